/*
 * Compiled fast path of verify's range check (see ledger/verify_rows.py).
 *
 * check_rows(start, rows) takes the rows of one range as the database
 * returned them: (seq, entry_hash, body, 14 derived columns). It hashes
 * every body. For each row it either vouches that the walk in
 * ledger/verify.py would pass the row, or leaves the row to the Python
 * check. It never reports a fault itself.
 *
 * read_sqlite_range does the same straight from a SQLite file, without
 * making Python objects of the rows, and compares the range's Merkle nodes.
 * subtree_levels computes those nodes, as _subtree_levels in Python does.
 *
 * It vouches only for bodies that are canonical JSON (RFC 8785), as the
 * walk requires, and in a narrow form that it reads in full:
 * - no whitespace and no \u escapes;
 * - no escapes in keys or in the strings it compares;
 * - ASCII keys in strictly increasing byte order, which is canonical order
 *   and rules out duplicate keys;
 * - numbers as canonical JSON writes them, in fixed notation;
 * - occurred_at absent, not a string, or in the form 2026-03-01T12:00:00Z
 *   or 2026-03-01T12:00:00.250000Z.
 * The entries that govledger writes have this form, except for rare text
 * that needs an escape, numbers written with an exponent and other forms
 * of occurred_at, such as offsets. Anything else goes to the Python check, the reference.
 */

#define PY_SSIZE_T_CLEAN
#define OPENSSL_SUPPRESS_DEPRECATED
#include <Python.h>
#include <dlfcn.h>
#include <openssl/sha.h>
#include <limits.h>
#include <string.h>

#define HASH_SIZE 32
#define ROW_WIDTH 17        /* seq, entry_hash, body and 14 derived columns */
#define MAX_DEPTH 64        /* deeper bodies go to the Python check */
#define MAX_NUMBER 24       /* no canonical number token is longer */

/* The derived columns, in DERIVED_COLUMNS order; a row has seq,
 * entry_hash and body before them. */
enum {
    D_KIND, D_ACTOR, D_SUBJECT, D_RECORDED_AT, D_OCCURRED_AT, D_MODEL_NAME,
    D_MODEL_VERSION, D_CONFIDENCE, D_TARGET_SEQ, D_TARGET_HASH,
    D_ITEM_DATASET, D_ITEM_ID, D_SOURCE_SYSTEM, D_SOURCE_REF
};

/* What a member's value was. OTHER is true, false, an object or an array. */
typedef enum { ABSENT = 0, NUL, STRING, NUMBER, OTHER } Kind;

typedef struct {
    Kind kind;
    const unsigned char *text;  /* a string's content, or a number's token */
    Py_ssize_t length;
    int escaped;                /* the string contains a backslash escape */
    int integer;                /* the number has no fraction or exponent */
} Value;

typedef struct {
    const unsigned char *at;
    const unsigned char *end;
} Reader;

/* Every scanning function returns 1 when the input is in the narrow form
 * and was consumed, 0 when the row must go to the Python check. */

static int
scan_utf8(Reader *r)
{
    /* r->at points at a lead byte >= 0x80. Accepts well-formed UTF-8 only:
     * no overlong forms, no surrogates, nothing above U+10FFFF. */
    const unsigned char *p = r->at;
    Py_ssize_t left = r->end - p;
    unsigned char c = p[0];
    int extra;
    unsigned char low = 0x80, high = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) {
        extra = 1;
    } else if (c >= 0xE0 && c <= 0xEF) {
        extra = 2;
        if (c == 0xE0) low = 0xA0;
        if (c == 0xED) high = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        extra = 3;
        if (c == 0xF0) low = 0x90;
        if (c == 0xF4) high = 0x8F;
    } else {
        return 0;
    }
    if (left <= extra) return 0;
    if (p[1] < low || p[1] > high) return 0;
    for (int i = 2; i <= extra; i++) {
        if (p[i] < 0x80 || p[i] > 0xBF) return 0;
    }
    r->at = p + extra + 1;
    return 1;
}

/* ASCII bytes that stand for themselves inside a JSON string. */
static unsigned char plain_byte[256];

static void
fill_plain_bytes(void)
{
    for (int c = 0x20; c < 0x80; c++) plain_byte[c] = c != '"' && c != '\\';
}

static int
scan_string(Reader *r, Value *v)
{
    /* r->at points at the opening quote. */
    const unsigned char *p = ++r->at;
    v->escaped = 0;
    while (r->at < r->end) {
        unsigned char c = *r->at;
        if (plain_byte[c]) {
            r->at++;
            continue;
        }
        if (c == '"') {
            v->kind = STRING;
            v->text = p;
            v->length = r->at - p;
            r->at++;
            return 1;
        }
        if (c == '\\') {
            if (r->at + 1 >= r->end) return 0;
            switch (r->at[1]) {
            case '"': case '\\': case 'b':
            case 'f': case 'n': case 'r': case 't':
                v->escaped = 1;
                r->at += 2;
                continue;
            default:  /* \u, \/ (not canonical) and anything invalid */
                return 0;
            }
        }
        if (c < 0x20) return 0;
        if (!scan_utf8(r)) return 0;  /* c >= 0x80 */
    }
    return 0;
}

static int
is_digit(const Reader *r)
{
    return r->at < r->end && *r->at >= '0' && *r->at <= '9';
}

static int parse_double(const Value *v, double *out);

static int
same_as_repr(const Value *v)
{
    /* Whether a number token is exactly Python's repr of its double. */
    char *repr;
    double value;
    int same;
    if (!parse_double(v, &value)) return 0;
    repr = PyOS_double_to_string(value, 'r', 0, 0, NULL);
    if (repr == NULL) {
        PyErr_Clear();
        return 0;
    }
    same = strlen(repr) == (size_t)v->length
           && memcmp(repr, v->text, v->length) == 0;
    PyMem_Free(repr);
    return same;
}

static int
scan_number(Reader *r, Value *v)
{
    /* Only numbers that RFC 8785 writes exactly so: an integer of at most
     * 15 digits other than -0, or a fraction in fixed notation with at most
     * 15 significant digits, no trailing zero and a value of at least 1e-6.
     * A decimal of at most 15 significant digits is the shortest that reads
     * back as its double, so it is the canonical form of that double. */
    const unsigned char *p = r->at, *first;
    int digits = 0, zeros = 0;
    v->integer = 1;
    if (*r->at == '-') r->at++;
    if (!is_digit(r)) return 0;
    first = r->at;
    if (*r->at == '0') {
        r->at++;
    } else {
        while (is_digit(r)) r->at++;
        digits = (int)(r->at - first);
    }
    if (r->at < r->end && *r->at == '.') {
        const unsigned char *fraction = ++r->at;
        v->integer = 0;
        if (!is_digit(r)) return 0;
        while (is_digit(r)) r->at++;
        if (r->at[-1] == '0') return 0;
        if (digits == 0) {  /* 0.000123: the leading zeros are not significant */
            while (fraction[zeros] == '0') zeros++;
            if (zeros > 5) return 0;
        }
        digits += (int)(r->at - fraction) - zeros;
    } else if (*first == '0' && p != first) {
        return 0;  /* -0 */
    }
    if (r->at < r->end && (*r->at == 'e' || *r->at == 'E')) return 0;
    v->kind = NUMBER;
    v->text = p;
    v->length = r->at - p;
    if (digits <= 15) return 1;
    /* Longer fractions, as models often output, are canonical if they are
     * Python's repr of their double, which is also the shortest form and in
     * fixed notation from 1e-4 up to 1e16. */
    return !v->integer && digits <= 17 && same_as_repr(v);
}

static int
scan_literal(Reader *r, const char *word, Py_ssize_t length)
{
    if (r->end - r->at < length || memcmp(r->at, word, length) != 0) return 0;
    r->at += length;
    return 1;
}

static int scan_value(Reader *r, Value *v, int depth);

static int
key_order(const Value *a, const Value *b)
{
    /* Compare two keys' bytes, like memcmp extended to unequal lengths. */
    Py_ssize_t n = a->length < b->length ? a->length : b->length;
    int c = memcmp(a->text, b->text, n);
    if (c != 0) return c;
    return (a->length > b->length) - (a->length < b->length);
}

static int
scan_key(Reader *r, Value *key, Value *previous, int *first)
{
    /* A member's key, in canonical order: RFC 8785 sorts keys by their
     * UTF-16 code units, which for unescaped ASCII keys is their byte order.
     * Keys that are strictly increasing also never repeat. */
    if (r->at >= r->end || *r->at != '"') return 0;
    if (!scan_string(r, key) || key->escaped) return 0;
    for (Py_ssize_t i = 0; i < key->length; i++) {
        if (key->text[i] >= 0x80) return 0;
    }
    if (!*first && key_order(previous, key) >= 0) return 0;
    *previous = *key;
    *first = 0;
    if (r->at >= r->end || *r->at != ':') return 0;
    r->at++;
    return 1;
}


static int
scan_container(Reader *r, int depth)
{
    /* Skip an object or an array; r->at points at '{' or '['. */
    Value ignored, key, previous = {0};
    int first = 1;
    int object = *r->at == '{';
    unsigned char close = object ? '}' : ']';
    if (depth >= MAX_DEPTH) return 0;
    r->at++;
    if (r->at < r->end && *r->at == close) {
        r->at++;
        return 1;
    }
    for (;;) {
        if (object && !scan_key(r, &key, &previous, &first)) return 0;
        if (!scan_value(r, &ignored, depth + 1)) return 0;
        if (r->at >= r->end) return 0;
        if (*r->at == close) {
            r->at++;
            return 1;
        }
        if (*r->at != ',') return 0;
        r->at++;
    }
}

static int
scan_value(Reader *r, Value *v, int depth)
{
    if (r->at >= r->end) return 0;
    switch (*r->at) {
    case '"':
        return scan_string(r, v);
    case '{': case '[':
        v->kind = OTHER;
        return scan_container(r, depth);
    case 't':
        v->kind = OTHER;
        return scan_literal(r, "true", 4);
    case 'f':
        v->kind = OTHER;
        return scan_literal(r, "false", 5);
    case 'n':
        v->kind = NUL;
        return scan_literal(r, "null", 4);
    default:
        if (*r->at == '-' || (*r->at >= '0' && *r->at <= '9')) {
            return scan_number(r, v);
        }
        return 0;
    }
}


static const char *const ENTRY_NAMES[] = {
    "kind", "prev", "record", "recorded_at", "seq", "v"};
enum { E_KIND, E_PREV, E_RECORD, E_RECORDED_AT, E_SEQ, E_V };

static const char *const RECORD_NAMES[] = {
    "actor", "confidence", "item", "model", "occurred_at", "source",
    "subject", "target"};
enum { R_ACTOR, R_CONFIDENCE, R_ITEM, R_MODEL, R_OCCURRED_AT, R_SOURCE,
       R_SUBJECT, R_TARGET, RECORD_COUNT };

static const char *const MEMBER_NAMES[] = {
    "dataset", "entry_hash", "id", "name", "ref", "seq", "system",
    "version"};
enum { M_DATASET, M_ENTRY_HASH, M_ID, M_NAME, M_REF, M_SEQ, M_SYSTEM,
       M_VERSION, MEMBER_COUNT };

static int
name_index(const Value *key, const char *const *names, int count)
{
    for (int i = 0; i < count; i++) {
        if (names[i][0] == key->text[0]
            && strncmp(names[i], (const char *)key->text, key->length) == 0
            && names[i][key->length] == '\0') {
            return i;
        }
    }
    return -1;
}

/* Read one object's members into found[]. Members listed in nested[] (by
 * index, or -1) whose value is an object are read with the member schema
 * into the matching Value array of nested_found. */
static int
read_object(Reader *r, const char *const *names, int count, Value *found,
            int depth, const int *nested, Value (*nested_found)[MEMBER_COUNT])
{
    Value key, previous = {0};
    int first = 1;
    memset(found, 0, sizeof(Value) * count);
    if (r->at >= r->end || *r->at != '{' || depth >= MAX_DEPTH) return 0;
    r->at++;
    if (r->at < r->end && *r->at == '}') {
        r->at++;
        return 1;
    }
    for (;;) {
        if (!scan_key(r, &key, &previous, &first)) return 0;
        int index = name_index(&key, names, count);
        if (index >= 0 && nested != NULL && nested[index] >= 0
            && r->at < r->end && *r->at == '{') {
            found[index].kind = OTHER;
            if (!read_object(r, MEMBER_NAMES, MEMBER_COUNT,
                             nested_found[nested[index]], depth + 1, NULL,
                             NULL)) {
                return 0;
            }
        } else {
            Value ignored;
            Value *slot = index >= 0 ? &found[index] : &ignored;
            if (!scan_value(r, slot, depth + 1)) return 0;
        }
        if (r->at >= r->end) return 0;
        if (*r->at == '}') {
            r->at++;
            return 1;
        }
        if (*r->at != ',') return 0;
        r->at++;
    }
}

/* A stored column value, from a Python object or straight from SQLite.
 * The types are SQLite's; OTHER is any Python type that SQLite has not. */
typedef enum { S_INTEGER = 1, S_FLOAT, S_TEXT, S_BLOB, S_NULL, S_OTHER } StoredType;

typedef struct {
    StoredType type;
    const unsigned char *text;  /* S_TEXT: UTF-8 bytes, as stored */
    Py_ssize_t length;
    long long integer;
    double real;
} Stored;

/* Comparisons of a value with a stored column. Each returns 1 when the
 * walk would derive exactly the stored value, 0 otherwise. */

static int
same_text(const Value *v, const Stored *stored)
{
    return stored->type == S_TEXT && stored->length == v->length
           && memcmp(stored->text, v->text, v->length) == 0;
}

static int
text_column(const Value *v, const Stored *stored)
{
    /* derived_values: the member if it is a string, else None. */
    if (v->kind != STRING) return stored->type == S_NULL;
    return !v->escaped && same_text(v, stored);
}

static int
required_text(const Value *v, const Stored *stored)
{
    /* kind and recorded_at: the walk rejects an entry without them. */
    return v->kind == STRING && !v->escaped && same_text(v, stored);
}

static int
two_digits(const unsigned char *p)
{
    return (p[0] - '0') * 10 + (p[1] - '0');
}

static int
is_utc_microseconds(const unsigned char *text)
{
    /* Whether text is a valid time in the form 2026-03-01T12:00:00.250000Z,
     * which normalize_time returns unchanged; an invalid one becomes None. */
    static const char shape[] = "dddd-dd-ddTdd:dd:dd.ddddddZ";
    static const int month_days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int year, month, day, days;
    for (int i = 0; i < 27; i++) {
        if (shape[i] == 'd' ? text[i] < '0' || text[i] > '9' : text[i] != shape[i]) {
            return 0;
        }
    }
    year = two_digits(text) * 100 + two_digits(text + 2);
    month = two_digits(text + 5);
    day = two_digits(text + 8);
    if (year < 1 || month < 1 || month > 12 || day < 1 || two_digits(text + 11) > 23
        || two_digits(text + 14) > 59 || two_digits(text + 17) > 59) {
        return 0;
    }
    days = month_days[month - 1];
    if (month == 2 && year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)) days = 29;
    return day <= days;
}

static int
occurred_at_column(const Value *v, const Stored *stored)
{
    /* normalize_time's fast form 2026-03-01T12:00:00Z and the normalized
     * form itself only; other times need its full parse, which the Python
     * check runs. */
    if (v->kind != STRING) return stored->type == S_NULL;
    if (v->escaped) return 0;
    if (v->length == 27) return is_utc_microseconds(v->text) && same_text(v, stored);
    if (v->length != 20 || v->text[10] != 'T' || v->text[19] != 'Z') return 0;
    for (int i = 0; i < 20; i++) {
        if (v->text[i] >= 0x80) return 0;  /* 20 bytes, but not 20 characters */
    }
    return stored->type == S_TEXT && stored->length == 27
           && memcmp(stored->text, v->text, 19) == 0
           && memcmp(stored->text + 19, ".000000Z", 8) == 0;
}

static int
parse_double(const Value *v, double *out)
{
    char buffer[MAX_NUMBER + 1];
    char *end;
    if (v->length > MAX_NUMBER) return 0;
    memcpy(buffer, v->text, v->length);
    buffer[v->length] = '\0';
    /* CPython's own correctly rounded conversion. */
    *out = PyOS_string_to_double(buffer, &end, NULL);
    if (*out == -1.0 && PyErr_Occurred()) {
        PyErr_Clear();
        return 0;
    }
    return end == buffer + v->length;
}

static int
confidence_column(const Value *v, const Stored *stored)
{
    /* A number (not a boolean) as a float, else None. */
    double value;
    if (v->kind != NUMBER) return stored->type == S_NULL;
    return stored->type == S_FLOAT && parse_double(v, &value)
           && stored->real == value;
}

static int
parse_integer(const Value *v, long long *out)
{
    /* At most 18 digits, so no overflow; "-0" is left to the Python check. */
    const unsigned char *p = v->text;
    Py_ssize_t length = v->length;
    int negative = 0;
    long long value = 0;
    if (length > 0 && *p == '-') {
        negative = 1;
        p++;
        length--;
    }
    if (length < 1 || length > 18 || (negative && *p == '0')) return 0;
    for (Py_ssize_t i = 0; i < length; i++) value = value * 10 + (p[i] - '0');
    *out = negative ? -value : value;
    return 1;
}

static int
target_seq_column(const Value *v, const Stored *stored)
{
    /* An integer as read by orjson, else None (a float such as 2.0 too). */
    long long value;
    if (v->kind != NUMBER || !v->integer) return stored->type == S_NULL;
    return parse_integer(v, &value) && stored->type == S_INTEGER
           && stored->integer == value;
}

static void
to_hex(const unsigned char *digest, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < HASH_SIZE; i++) {
        out[2 * i] = digits[digest[i] >> 4];
        out[2 * i + 1] = digits[digest[i] & 15];
    }
}

static void
hash_leaf(const unsigned char *body, Py_ssize_t size, unsigned char *digest)
{
    static const unsigned char leaf_prefix = 0x00;
    SHA256_CTX context;
    SHA256_Init(&context);
    SHA256_Update(&context, &leaf_prefix, 1);
    SHA256_Update(&context, body, size);
    SHA256_Final(digest, &context);
}

static PyObject *
make_levels(const unsigned char *leaves, Py_ssize_t count)
{
    /* The levels above count leaf hashes; see subtree_levels. */
    static const unsigned char node_prefix = 0x01;
    PyObject *levels = PyList_New(0);
    const unsigned char *below = leaves;
    if (levels == NULL) return NULL;
    while (count > 1) {
        Py_ssize_t parents = count / 2;
        PyObject *level = PyBytes_FromStringAndSize(NULL, parents * HASH_SIZE);
        if (level == NULL || PyList_Append(levels, level) < 0) {
            Py_XDECREF(level);
            Py_DECREF(levels);
            return NULL;
        }
        Py_DECREF(level);  /* the list keeps it alive */
        unsigned char *out = (unsigned char *)PyBytes_AS_STRING(level);
        for (Py_ssize_t i = 0; i < parents; i++) {
            SHA256_CTX context;
            SHA256_Init(&context);
            SHA256_Update(&context, &node_prefix, 1);
            SHA256_Update(&context, below + 2 * i * HASH_SIZE, 2 * HASH_SIZE);
            SHA256_Final(out + i * HASH_SIZE, &context);
        }
        below = out;
        count = parents;
    }
    return levels;
}

/* Decide one row whose hash already matched: its body and its 14 derived
 * columns, in DERIVED_COLUMNS order. prev_hex is the hex hash of the
 * previous row, or NULL for the range's first row, whose prev string is
 * then stored in *first_prev. Returns 1 to vouch, 0 to leave the row to
 * the Python check, -1 on a Python error. */
static int
decide_row(const unsigned char *body, Py_ssize_t size, long long seq,
           const char *prev_hex, const Stored *columns, PyObject **first_prev)
{
    Reader r = {body, body + size};
    Value entry[6], record[RECORD_COUNT], members[4][MEMBER_COUNT];
    /* Record members read as objects: item, model, source, target. */
    int nested[RECORD_COUNT] = {-1, -1, 0, 1, -1, 2, -1, 3};
    Value *item = members[0], *model = members[1], *source = members[2],
          *target = members[3];
    long long number;
    Value key;

    /* The entry: exactly its six members, in this order. */
    if (r.at >= r.end || *r.at != '{') return 0;
    r.at++;
    for (int i = 0; i < 6; i++) {
        if (r.at >= r.end || *r.at != '"') return 0;
        if (!scan_string(&r, &key) || key.escaped) return 0;
        if (key.length != (Py_ssize_t)strlen(ENTRY_NAMES[i])
            || memcmp(key.text, ENTRY_NAMES[i], key.length) != 0) {
            return 0;
        }
        if (r.at >= r.end || *r.at != ':') return 0;
        r.at++;
        if (i == E_RECORD) {
            memset(members, 0, sizeof(members));
            entry[i].kind = OTHER;
            if (!read_object(&r, RECORD_NAMES, RECORD_COUNT, record, 1,
                             nested, members)) {
                return 0;
            }
        } else if (!scan_value(&r, &entry[i], 1)) {
            return 0;
        }
        if (r.at >= r.end || *r.at != (i == 5 ? '}' : ',')) return 0;
        r.at++;
    }
    if (r.at != r.end) return 0;

    /* Version 1, the row's seq, and the link to the previous entry. */
    if (entry[E_V].kind != NUMBER || entry[E_V].length != 1
        || entry[E_V].text[0] != '1') {
        return 0;
    }
    if (entry[E_SEQ].kind != NUMBER || !entry[E_SEQ].integer
        || !parse_integer(&entry[E_SEQ], &number) || number != seq) {
        return 0;
    }
    if (entry[E_PREV].kind != STRING || entry[E_PREV].escaped) return 0;
    if (prev_hex != NULL) {
        if (entry[E_PREV].length != 2 * HASH_SIZE
            || memcmp(entry[E_PREV].text, prev_hex, 2 * HASH_SIZE) != 0) {
            return 0;
        }
    }

    /* The derived columns, as derived_values computes them. */
    if (!required_text(&entry[E_KIND], &columns[D_KIND])
        || !text_column(&record[R_ACTOR], &columns[D_ACTOR])
        || !text_column(&record[R_SUBJECT], &columns[D_SUBJECT])
        || !required_text(&entry[E_RECORDED_AT], &columns[D_RECORDED_AT])
        || !occurred_at_column(&record[R_OCCURRED_AT], &columns[D_OCCURRED_AT])
        || !text_column(&model[M_NAME], &columns[D_MODEL_NAME])
        || !text_column(&model[M_VERSION], &columns[D_MODEL_VERSION])
        || !confidence_column(&record[R_CONFIDENCE], &columns[D_CONFIDENCE])
        || !target_seq_column(&target[M_SEQ], &columns[D_TARGET_SEQ])
        || !text_column(&target[M_ENTRY_HASH], &columns[D_TARGET_HASH])
        || !text_column(&item[M_DATASET], &columns[D_ITEM_DATASET])
        || !text_column(&item[M_ID], &columns[D_ITEM_ID])
        || !text_column(&source[M_SYSTEM], &columns[D_SOURCE_SYSTEM])
        || !text_column(&source[M_REF], &columns[D_SOURCE_REF])) {
        return 0;
    }
    if (prev_hex == NULL) {
        *first_prev = PyUnicode_DecodeUTF8((const char *)entry[E_PREV].text,
                                           entry[E_PREV].length, "strict");
        if (*first_prev == NULL) return -1;
    }
    return 1;
}

/* The state of one range check, shared by both ways of reading rows. */
typedef struct {
    long long start;
    Py_ssize_t count;           /* rows checked so far */
    Py_ssize_t capacity;        /* rows in the range */
    PyObject *leaves;           /* bytes, 32 per row */
    PyObject *undecided;        /* list of row indexes */
    PyObject *first_prev;       /* str, or NULL */
    char prev_hex[2 * HASH_SIZE];
} RangeState;

static int
start_range(RangeState *state, long long start, Py_ssize_t capacity)
{
    memset(state, 0, sizeof(*state));
    if (capacity < 0 || capacity > PY_SSIZE_T_MAX / HASH_SIZE
        || start > LLONG_MAX - capacity) {
        PyErr_SetString(PyExc_ValueError,
                        "the range's seqs must fit in a signed 64-bit integer");
        return -1;
    }
    state->start = start;
    state->capacity = capacity;
    state->leaves = PyBytes_FromStringAndSize(NULL, capacity * HASH_SIZE);
    state->undecided = PyList_New(0);
    return state->leaves != NULL && state->undecided != NULL ? 0 : -1;
}

static void
drop_range(RangeState *state)
{
    Py_CLEAR(state->leaves);
    Py_CLEAR(state->undecided);
    Py_CLEAR(state->first_prev);
}

/* Check the next row: 1 if its seq, body and hash are as the range needs
 * (it is then vouched for or listed as undecided), 0 if the Python check
 * must decide the whole range, -1 on a Python error. */
static int
add_row(RangeState *state, const Stored *seq, const Stored *hash,
        const Stored *body, const Stored *columns)
{
    Py_ssize_t index = state->count;
    unsigned char *digest;
    char hex[2 * HASH_SIZE];
    int decided;

    /* start + index cannot overflow: start_range checked the whole range. */
    if (index >= state->capacity || seq->type != S_INTEGER
        || seq->integer != state->start + index || body->type != S_BLOB) {
        return 0;
    }
    digest = (unsigned char *)PyBytes_AS_STRING(state->leaves) + index * HASH_SIZE;
    hash_leaf(body->text, body->length, digest);
    to_hex(digest, hex);
    if (hash->type != S_TEXT || hash->length != 2 * HASH_SIZE
        || memcmp(hash->text, hex, 2 * HASH_SIZE) != 0) {
        return 0;
    }
    decided = decide_row(body->text, body->length, seq->integer,
                         index == 0 ? NULL : state->prev_hex, columns,
                         &state->first_prev);
    if (decided < 0) return -1;
    if (decided == 0) {
        PyObject *number = PyLong_FromSsize_t(index);
        if (number == NULL) return -1;
        int failed = PyList_Append(state->undecided, number);
        Py_DECREF(number);
        if (failed) return -1;
    }
    memcpy(state->prev_hex, hex, sizeof(hex));
    state->count++;
    return 1;
}

static PyObject *
finish_range(RangeState *state)
{
    PyObject *result;
    if (state->count != state->capacity) {
        drop_range(state);
        Py_RETURN_NONE;
    }
    if (state->first_prev == NULL) state->first_prev = Py_NewRef(Py_None);
    result = PyTuple_Pack(3, state->leaves, state->undecided, state->first_prev);
    drop_range(state);
    return result;
}

static void
stored_from_object(PyObject *value, Stored *out)
{
    /* What the drivers return: str, bytes, int, float or None. */
    memset(out, 0, sizeof(*out));
    if (value == Py_None) {
        out->type = S_NULL;
    } else if (PyUnicode_CheckExact(value)) {
        out->text = (const unsigned char *)PyUnicode_AsUTF8AndSize(value, &out->length);
        if (out->text == NULL) {  /* a lone surrogate, from a lenient reader */
            PyErr_Clear();
            out->type = S_OTHER;
        } else {
            out->type = S_TEXT;
        }
    } else if (PyBytes_CheckExact(value)) {
        out->type = S_BLOB;
        out->text = (const unsigned char *)PyBytes_AS_STRING(value);
        out->length = PyBytes_GET_SIZE(value);
    } else if (PyLong_CheckExact(value)) {  /* not bool, a subclass */
        int overflow;
        out->integer = PyLong_AsLongLongAndOverflow(value, &overflow);
        if (overflow || (out->integer == -1 && PyErr_Occurred())) {
            PyErr_Clear();
            out->type = S_OTHER;
        } else {
            out->type = S_INTEGER;
        }
    } else if (PyFloat_CheckExact(value)) {
        out->type = S_FLOAT;
        out->real = PyFloat_AS_DOUBLE(value);
    } else {
        out->type = S_OTHER;
    }
}

PyDoc_STRVAR(check_rows_doc,
"check_rows(start, rows, /)\n--\n\n"
"Hash and check one range of rows (seq, entry_hash, body, derived columns).\n\n"
"Returns None unless every row has the seq start + i, a bytes body and the\n"
"stored hash of that body; the Python check then decides the range.\n"
"Otherwise returns (leaves, undecided, first_prev): the concatenated entry\n"
"hashes, the indexes of the rows left to the Python check, and the first\n"
"row's prev (None when that row is left to the Python check).");

static PyObject *
check_rows(PyObject *Py_UNUSED(module), PyObject *args)
{
    long long start;
    PyObject *rows;
    RangeState state;
    Stored columns[ROW_WIDTH];

    if (!PyArg_ParseTuple(args, "LO!:check_rows", &start, &PyList_Type, &rows)) {
        return NULL;
    }
    if (start_range(&state, start, PyList_GET_SIZE(rows)) < 0) goto error;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(rows); i++) {
        /* The row keeps the text and bytes that columns[] points into
         * alive, even if Python code run by an allocation empties rows. */
        PyObject *row = Py_NewRef(PyList_GET_ITEM(rows, i));
        if (!PyTuple_CheckExact(row) || PyTuple_GET_SIZE(row) != ROW_WIDTH) {
            Py_DECREF(row);
            break;
        }
        for (int column = 0; column < ROW_WIDTH; column++) {
            stored_from_object(PyTuple_GET_ITEM(row, column), &columns[column]);
        }
        int added = add_row(&state, &columns[0], &columns[1], &columns[2],
                            &columns[3]);
        Py_DECREF(row);
        if (added < 0) goto error;
        if (added == 0) break;
    }
    return finish_range(&state);

error:
    drop_range(&state);
    return NULL;
}

/* Reading rows straight from SQLite. The functions come from the SQLite
 * library that Python's own sqlite3 module loaded, so that the process
 * never holds two copies of SQLite, whose file locks would not know of
 * each other. The few declarations needed are SQLite's stable C API. */

typedef struct sqlite3 sqlite3;
typedef struct sqlite3_stmt sqlite3_stmt;
#define SQLITE_OK 0
#define SQLITE_ROW 100
#define SQLITE_DONE 101
#define SQLITE_OPEN_READWRITE 0x00000002
#define SQLITE_OPEN_NOMUTEX 0x00008000

static struct {
    int loaded;
    int (*open_v2)(const char *, sqlite3 **, int, const char *);
    int (*close_v2)(sqlite3 *);
    int (*busy_timeout)(sqlite3 *, int);
    int (*prepare_v2)(sqlite3 *, const char *, int, sqlite3_stmt **,
                      const char **);
    int (*bind_int64)(sqlite3_stmt *, int, long long);
    int (*reset)(sqlite3_stmt *);
    int (*step)(sqlite3_stmt *);
    int (*finalize)(sqlite3_stmt *);
    int (*column_count)(sqlite3_stmt *);
    int (*column_type)(sqlite3_stmt *, int);
    long long (*column_int64)(sqlite3_stmt *, int);
    double (*column_double)(sqlite3_stmt *, int);
    const void *(*column_blob)(sqlite3_stmt *, int);
    const unsigned char *(*column_text)(sqlite3_stmt *, int);
    int (*column_bytes)(sqlite3_stmt *, int);
} lib;

static void
load_sqlite(void)
{
    /* Leaves lib.loaded at 0 when anything is missing. */
    PyObject *module = PyImport_ImportModule("_sqlite3");
    PyObject *file = module ? PyObject_GetAttrString(module, "__file__") : NULL;
    const char *path = file ? PyUnicode_AsUTF8(file) : NULL;
    void *handle = path ? dlopen(path, RTLD_NOW | RTLD_NOLOAD) : NULL;
    PyErr_Clear();
    Py_XDECREF(file);
    Py_XDECREF(module);
    if (handle == NULL) return;
#define LOAD(field, name)                                  \
    *(void **)(&lib.field) = dlsym(handle, name);          \
    if (lib.field == NULL) return;
    LOAD(open_v2, "sqlite3_open_v2")
    LOAD(close_v2, "sqlite3_close_v2")
    LOAD(busy_timeout, "sqlite3_busy_timeout")
    LOAD(prepare_v2, "sqlite3_prepare_v2")
    LOAD(bind_int64, "sqlite3_bind_int64")
    LOAD(reset, "sqlite3_reset")
    LOAD(step, "sqlite3_step")
    LOAD(finalize, "sqlite3_finalize")
    LOAD(column_count, "sqlite3_column_count")
    LOAD(column_type, "sqlite3_column_type")
    LOAD(column_int64, "sqlite3_column_int64")
    LOAD(column_double, "sqlite3_column_double")
    LOAD(column_blob, "sqlite3_column_blob")
    LOAD(column_text, "sqlite3_column_text")
    LOAD(column_bytes, "sqlite3_column_bytes")
#undef LOAD
    lib.loaded = 1;
}

static void
stored_from_column(sqlite3_stmt *statement, int column, Stored *out)
{
    memset(out, 0, sizeof(*out));
    out->type = (StoredType)lib.column_type(statement, column);
    switch (out->type) {
    case S_INTEGER:
        out->integer = lib.column_int64(statement, column);
        break;
    case S_FLOAT:
        out->real = lib.column_double(statement, column);
        break;
    case S_TEXT:
        out->text = lib.column_text(statement, column);
        out->length = lib.column_bytes(statement, column);
        break;
    case S_BLOB:
        out->text = lib.column_blob(statement, column);
        out->length = lib.column_bytes(statement, column);
        if (out->text == NULL) out->text = (const unsigned char *)"";
        break;
    default:
        out->type = S_NULL;
    }
}

static int
nodes_match(sqlite3 *db, const char *query, long long start, PyObject *levels)
{
    /* Compare each level's stored nodes inside the range with the computed
     * ones: exactly one row per index, in order, each a 32-byte blob equal
     * to the computed hash. Returns 1 if all match, 0 otherwise. */
    sqlite3_stmt *statement = NULL;
    int matched = 1;
    if (lib.prepare_v2(db, query, -1, &statement, NULL) != SQLITE_OK
        || lib.column_count(statement) != 2) {
        lib.finalize(statement);
        return 0;
    }
    for (Py_ssize_t k = 0; matched && k < PyList_GET_SIZE(levels); k++) {
        PyObject *level = PyList_GET_ITEM(levels, k);
        const unsigned char *node = (const unsigned char *)PyBytes_AS_STRING(level);
        long long count = PyBytes_GET_SIZE(level) / HASH_SIZE;
        long long low = start >> (k + 1), seen = 0;
        int code;
        if (lib.reset(statement) != SQLITE_OK
            || lib.bind_int64(statement, 1, k + 1) != SQLITE_OK
            || lib.bind_int64(statement, 2, low) != SQLITE_OK
            || lib.bind_int64(statement, 3, low + count) != SQLITE_OK) {
            matched = 0;
            break;
        }
        while ((code = lib.step(statement)) == SQLITE_ROW) {
            Stored index, hash;
            stored_from_column(statement, 0, &index);
            stored_from_column(statement, 1, &hash);
            if (seen >= count || index.type != S_INTEGER
                || index.integer != low + seen || hash.type != S_BLOB
                || hash.length != HASH_SIZE
                || memcmp(hash.text, node + seen * HASH_SIZE, HASH_SIZE) != 0) {
                matched = 0;
                break;
            }
            seen++;
        }
        if (matched && (code != SQLITE_DONE || seen != count)) matched = 0;
    }
    lib.finalize(statement);
    return matched;
}

PyDoc_STRVAR(read_sqlite_range_doc,
"read_sqlite_range(path, rows_query, nodes_query, start, end, /)\n--\n\n"
"Check one range straight from the SQLite file at path, without making\n"
"Python objects of its rows.\n\n"
"rows_query selects the rows as check_rows takes them, with parameters\n"
"start and end; nodes_query selects (idx, hash) of one level's Merkle nodes\n"
"in index order, with parameters level, first index and end index.\n"
"Returns None when the rows are not as the range needs or SQLite reports an\n"
"error; the caller then reads the range itself. Otherwise returns\n"
"(leaves, undecided, first_prev, levels) as check_rows does, plus the\n"
"levels of subtree_levels, or None for levels when a stored node differs.\n"
"Raises RuntimeError if this Python's sqlite3 module does not expose the\n"
"SQLite library to load.");

static PyObject *
read_sqlite_range(PyObject *Py_UNUSED(module), PyObject *args)
{
    const char *path, *rows_query, *nodes_query;
    long long start, end;
    sqlite3 *db = NULL;
    sqlite3_stmt *statement = NULL;
    RangeState state;
    Stored columns[ROW_WIDTH];
    PyObject *checked, *levels, *result;
    int code = SQLITE_OK, failed = 0;

    if (!PyArg_ParseTuple(args, "sssLL:read_sqlite_range", &path, &rows_query,
                          &nodes_query, &start, &end)) {
        return NULL;
    }
    if (!lib.loaded) {
        PyErr_SetString(PyExc_RuntimeError,
                        "the SQLite library of the sqlite3 module was not found");
        return NULL;
    }
    /* end - start overflows unless both have the same sign or start >= 0. */
    if (end <= start || (start < 0 && end > LLONG_MAX + start)) {
        PyErr_SetString(PyExc_ValueError,
                        "end must be greater than start, by at most 2**63 - 1");
        return NULL;
    }
    if (start_range(&state, start, (Py_ssize_t)(end - start)) < 0) {
        drop_range(&state);
        return NULL;
    }
    if (lib.open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX,
                    NULL) != SQLITE_OK
        || lib.busy_timeout(db, 5000) != SQLITE_OK
        || lib.prepare_v2(db, rows_query, -1, &statement, NULL) != SQLITE_OK
        || lib.column_count(statement) != ROW_WIDTH
        || lib.bind_int64(statement, 1, start) != SQLITE_OK
        || lib.bind_int64(statement, 2, end) != SQLITE_OK) {
        goto cannot_decide;
    }
    while ((code = lib.step(statement)) == SQLITE_ROW) {
        for (int column = 0; column < ROW_WIDTH; column++) {
            stored_from_column(statement, column, &columns[column]);
        }
        int added = add_row(&state, &columns[0], &columns[1], &columns[2],
                            &columns[3]);
        if (added < 0) {
            failed = 1;
            goto cannot_decide;
        }
        if (added == 0) goto cannot_decide;
    }
    if (code != SQLITE_DONE) goto cannot_decide;
    lib.finalize(statement);
    statement = NULL;
    checked = finish_range(&state);
    if (checked == NULL || checked == Py_None) {
        lib.close_v2(db);
        return checked;
    }
    levels = make_levels((const unsigned char *)PyBytes_AS_STRING(
                             PyTuple_GET_ITEM(checked, 0)),
                         end - start);
    if (levels == NULL) {
        Py_DECREF(checked);
        lib.close_v2(db);
        return NULL;
    }
    if (!nodes_match(db, nodes_query, start, levels)) {
        Py_SETREF(levels, Py_NewRef(Py_None));
    }
    lib.close_v2(db);
    result = Py_BuildValue("(OOON)", PyTuple_GET_ITEM(checked, 0),
                           PyTuple_GET_ITEM(checked, 1),
                           PyTuple_GET_ITEM(checked, 2), levels);
    Py_DECREF(checked);
    return result;

cannot_decide:
    lib.finalize(statement);  /* both accept NULL */
    lib.close_v2(db);
    drop_range(&state);
    if (failed) return NULL;
    Py_RETURN_NONE;
}

PyDoc_STRVAR(subtree_levels_doc,
"subtree_levels(leaves, /)\n--\n\n"
"Return the levels above concatenated 32-byte leaf hashes, level 1 first.\n\n"
"Each level is its node hashes concatenated: SHA-256(0x01 || left || right)\n"
"for each whole pair of the level below. The last node of a level with an\n"
"odd count has no parent.");

static PyObject *
subtree_levels(PyObject *Py_UNUSED(module), PyObject *arg)
{
    Py_buffer view;
    PyObject *levels;

    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0) return NULL;
    if (view.len % HASH_SIZE != 0) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_ValueError,
                        "leaves must be whole 32-byte hashes");
        return NULL;
    }
    levels = make_levels(view.buf, view.len / HASH_SIZE);
    PyBuffer_Release(&view);
    return levels;
}

static PyMethodDef methods[] = {
    {"check_rows", check_rows, METH_VARARGS, check_rows_doc},
    {"read_sqlite_range", read_sqlite_range, METH_VARARGS,
     read_sqlite_range_doc},
    {"subtree_levels", subtree_levels, METH_O, subtree_levels_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "ledger._rowcheck",
    .m_doc = "Compiled fast path of verify's range check; see "
             "ledger/verify_rows.py.",
    .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC
PyInit__rowcheck(void)
{
    PyObject *module = PyModule_Create(&module_def);
    if (module == NULL) return NULL;
    fill_plain_bytes();
    load_sqlite();
    if (PyModule_AddObjectRef(module, "SQLITE_READER",
                              lib.loaded ? Py_True : Py_False) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
