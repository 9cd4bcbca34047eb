/* The HTTP hello protocol of servers/protocol.py, byte for byte.
 *
 * Every rule below repeats a Python expression there (named in the comments), so
 * the C and Python servers answer the same bytes with the same outcome; the test
 * tests/test_c_protocol.py compares both on generated inputs. ASCII-only helpers
 * are used on purpose: Python's bytes.lower()/strip() ignore the C locale.
 */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>

#include "cloop.h"

/* protocol.py: _response(...) for each prebuilt answer. */
#define HEAD_OF(status, len, connection)                                                  \
    "HTTP/1.1 " status "\r\nContent-Type: text/plain\r\nContent-Length: " len             \
    "\r\nConnection: " connection "\r\n\r\n"
static const char OK_KEEP_ALIVE[] = HEAD_OF("200 OK", "13", "keep-alive") "Hello, world!";
static const char OK_CLOSE[] = HEAD_OF("200 OK", "13", "close") "Hello, world!";
static const char HEAD_KEEP_ALIVE[] = HEAD_OF("200 OK", "13", "keep-alive");
static const char HEAD_CLOSE[] = HEAD_OF("200 OK", "13", "close");
static const char BAD_REQUEST[] = HEAD_OF("400 Bad Request", "12", "close") "bad request\n";
static const char HEAD_TOO_LARGE[] =
    HEAD_OF("431 Request Header Fields Too Large", "23", "close") "request head too large\n";
static const char NOT_ALLOWED[] =
    HEAD_OF("405 Method Not Allowed", "19", "close") "method not allowed\n";
static const char NOT_IMPLEMENTED[] =
    HEAD_OF("501 Not Implemented", "29", "close") "chunked bodies not supported\n";
static const char BODY_TOO_LARGE[] =
    HEAD_OF("413 Content Too Large", "23", "close") "request body too large\n";
#undef HEAD_OF

#define LIT(s) (s), (sizeof(s) - 1)

int cl_buf_append(cl_buf *buf, const char *data, size_t len) {
    if (len == 0) return 0;
    if (buf->len + len > buf->cap) {
        size_t cap = buf->cap ? buf->cap : 256;
        while (cap < buf->len + len) cap *= 2;
        char *grown = realloc(buf->data, cap);
        if (grown == NULL) return -1;
        buf->data = grown;
        buf->cap = cap;
    }
    memcpy(buf->data + buf->len, data, len);
    buf->len += len;
    return 0;
}

void cl_buf_free(cl_buf *buf) {
    free(buf->data);
    buf->data = NULL;
    buf->len = buf->cap = 0;
}

/* Python's bytes.isspace()/strip() set: space, \t, \n, \r, \v, \f. */
static int is_space(unsigned char c) {
    return c == ' ' || (c >= '\t' && c <= '\r');
}

static unsigned char lower(unsigned char c) {
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + 32) : c;
}

static void strip(const char **s, size_t *n) {
    while (*n && is_space((unsigned char)**s)) (*s)++, (*n)--;
    while (*n && is_space((unsigned char)(*s)[*n - 1])) (*n)--;
}

/* name.strip().lower() == word (word is lower case) */
static int name_is(const char *s, size_t n, const char *word, size_t wn) {
    strip(&s, &n);
    if (n != wn) return 0;
    for (size_t i = 0; i < n; i++)
        if (lower((unsigned char)s[i]) != (unsigned char)word[i]) return 0;
    return 1;
}

/* word in value.lower() (word is lower case) */
static int contains_ci(const char *s, size_t n, const char *word, size_t wn) {
    for (size_t i = 0; i + wn <= n; i++) {
        size_t j = 0;
        while (j < wn && lower((unsigned char)s[i + j]) == (unsigned char)word[j]) j++;
        if (j == wn) return 1;
    }
    return 0;
}

/* protocol.py _CONTENT_LENGTH: RFC 9110 8.6, Content-Length = 1*DIGIT with optional
 * whitespace (SP, HTAB) around it, at most CL_MAX_CONTENT_LENGTH_DIGITS digits (so the
 * value fits in 64 bits with no overflow check). 1 and *value when it matches, else 0. */
static int parse_content_length(const char *s, size_t n, uint64_t *value) {
    while (n && (*s == ' ' || *s == '\t')) s++, n--;
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t')) n--;
    if (n == 0 || n > CL_MAX_CONTENT_LENGTH_DIGITS) return 0;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return 0;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    *value = v;
    return 1;
}

typedef struct head_info {
    const char *method;
    size_t method_len;
    int keep_alive;
    uint64_t content_length;
    int chunked;
} head_info;

/* protocol.py _parse_head: 1 when well formed, 0 where it returns None. */
static int parse_head(const char *head, size_t n, head_info *info) {
    const char *crlf = memmem(head, n, "\r\n", 2);
    size_t line_len = crlf ? (size_t)(crlf - head) : n;
    /* lines[0].split(b" ") must give exactly 3 parts: two single spaces. */
    const char *sp1 = memchr(head, ' ', line_len);
    if (sp1 == NULL) return 0;
    const char *after1 = sp1 + 1;
    size_t rest1 = line_len - (size_t)(after1 - head);
    const char *sp2 = memchr(after1, ' ', rest1);
    if (sp2 == NULL) return 0;
    const char *version = sp2 + 1;
    size_t version_len = line_len - (size_t)(version - head);
    if (memchr(version, ' ', version_len) != NULL) return 0;
    if (sp2 == after1) return 0; /* empty target */
    if (version_len < 7 || memcmp(version, "HTTP/1.", 7) != 0) return 0;
    info->method = head;
    info->method_len = (size_t)(sp1 - head);
    info->keep_alive = version_len == 8 && memcmp(version, "HTTP/1.1", 8) == 0;
    info->content_length = 0;
    info->chunked = 0;
    int seen_length = 0;
    while (crlf != NULL) {
        const char *line = crlf + 2;
        size_t left = n - (size_t)(line - head);
        crlf = memmem(line, left, "\r\n", 2);
        size_t len = crlf ? (size_t)(crlf - line) : left;
        const char *colon = memchr(line, ':', len);
        if (colon == NULL) return 0;
        size_t name_len = (size_t)(colon - line);
        const char *value = colon + 1;
        size_t value_len = len - name_len - 1;
        if (name_is(line, name_len, LIT("connection"))) {
            if (contains_ci(value, value_len, LIT("close")))
                info->keep_alive = 0;
            else if (contains_ci(value, value_len, LIT("keep-alive")))
                info->keep_alive = 1;
        } else if (name_is(line, name_len, LIT("content-length"))) {
            /* A repeated Content-Length is refused even when equal (protocol.py says why). */
            if (seen_length || !parse_content_length(value, value_len, &info->content_length))
                return 0;
            seen_length = 1;
        } else if (name_is(line, name_len, LIT("transfer-encoding")) &&
                   contains_ci(value, value_len, LIT("chunked"))) {
            info->chunked = 1;
        }
    }
    return 1;
}

/* protocol.py http_consume. */
int cl_http_consume(const char *data, size_t n, size_t max_head, int close_every, cl_buf *out,
                    cl_http_result *result) {
    size_t start = 0;
    result->close = 0;
    result->requests = 0;
#define ANSWER(resp)                                                                      \
    do {                                                                                  \
        if (cl_buf_append(out, LIT(resp)) < 0) return -1;                                 \
        result->requests++;                                                               \
    } while (0)
#define FINAL(resp)                                                                       \
    do {                                                                                  \
        ANSWER(resp);                                                                     \
        result->close = 1;                                                                \
        result->consumed = n;                                                             \
        return 0;                                                                         \
    } while (0)
    while (start < n) {
        const char *end_p = memmem(data + start, n - start, "\r\n\r\n", 4);
        if (end_p == NULL) {
            if (n - start > max_head) FINAL(HEAD_TOO_LARGE);
            break;
        }
        size_t end = (size_t)(end_p - data);
        if (end - start > max_head) FINAL(HEAD_TOO_LARGE);
        head_info info;
        if (!parse_head(data + start, end - start, &info)) FINAL(BAD_REQUEST);
        if (info.chunked) FINAL(NOT_IMPLEMENTED);
        if (info.content_length > CL_MAX_BODY_BYTES) FINAL(BODY_TOO_LARGE);
        size_t body_end = end + 4 + (size_t)info.content_length;
        if (body_end > n) break; /* wait for the rest of the body */
        int keep_alive = info.keep_alive && !close_every;
        if (info.method_len == 3 && memcmp(info.method, "GET", 3) == 0) {
            if (keep_alive) ANSWER(OK_KEEP_ALIVE);
            else ANSWER(OK_CLOSE);
        } else if (info.method_len == 4 && memcmp(info.method, "HEAD", 4) == 0) {
            if (keep_alive) ANSWER(HEAD_KEEP_ALIVE);
            else ANSWER(HEAD_CLOSE);
        } else {
            ANSWER(NOT_ALLOWED);
            keep_alive = 0;
        }
        start = body_end;
        if (!keep_alive) {
            result->close = 1;
            result->consumed = n;
            return 0;
        }
    }
#undef FINAL
#undef ANSWER
    result->consumed = start;
    return 0;
}

/* The HTTP branch of servers/eventloop.py _read, shared by the C loop (loop.c) and the
 * io_uring completion server (uring_server.c): `in` holds a connection's unconsumed
 * input between reads (data = conn.inbuf + data); what `data` completes is answered. */
int cl_http_feed(cl_buf *in, const char *data, size_t got, size_t max_head, int close_every,
                 cl_buf *out, cl_http_result *result) {
    size_t n = got;
    int joined = in->len > 0;
    if (joined) {
        if (cl_buf_append(in, data, got) < 0) return -1;
        data = in->data;
        n = in->len;
    }
    if (cl_http_consume(data, n, max_head, close_every, out, result) < 0) return -1;
    size_t consumed = result->consumed;
    if (result->close || consumed == n) {
        cl_buf_free(in);
    } else if (joined) {
        memmove(in->data, in->data + consumed, n - consumed);
        in->len = n - consumed;
    } else if (cl_buf_append(in, data + consumed, n - consumed) < 0) {
        return -1;
    }
    return 0;
}
