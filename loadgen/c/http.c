/* Reply completion for the core, by loadgen/protocols.py's rules, conservatively.
 *
 * The core must agree with Python's parse_http / http_closes / parse_echo
 * whenever it acts alone: LG_INCOMPLETE only where parse_http says
 * INCOMPLETE, LG_COMPLETE only where it says COMPLETE and http_closes says
 * False. Everything else (bad status, no Content-Length, chunked, extra
 * bytes, Connection: close, HTTP/1.0, spellings strtol would take but
 * Python's int() might not, or the reverse) is LG_DEFER: Python decides on
 * the same bytes. lg_http_reply_as(..., closing=1) is for a connection that
 * ends after its one answer (churn): parse_http alone decides there, so the
 * Connection header and HTTP/1.0 do not matter. tests/test_loadgen_core.py checks
 * the agreement.
 */
#define _GNU_SOURCE /* memmem */
#include <string.h>

#include "cload.h"

/* Python's bytes.strip() whitespace. */
static int is_ws(char ch) {
    return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '\v' || ch == '\f';
}

static void trim(const char **p, const char **end) {
    while (*p < *end && is_ws(**p)) (*p)++;
    while (*end > *p && is_ws((*end)[-1])) (*end)--;
}

static int ieq(const char *p, const char *end, const char *word) {
    size_t n = strlen(word);
    if ((size_t)(end - p) != n) return 0;
    for (size_t i = 0; i < n; i++) {
        char ch = p[i];
        if (ch >= 'A' && ch <= 'Z') ch = (char)(ch - 'A' + 'a');
        if (ch != word[i]) return 0;
    }
    return 1;
}

/* Plain ASCII digits only (what int() certainly reads the same); -1 otherwise. */
static long long digits(const char *p, const char *end, int max_digits) {
    if (p == end || end - p > max_digits) return -1;
    long long v = 0;
    for (; p < end; p++) {
        if (*p < '0' || *p > '9') return -1;
        v = v * 10 + (*p - '0');
    }
    return v;
}

enum lg_reply lg_http_reply(const char *buf, size_t len) { return lg_http_reply_as(buf, len, 0); }

enum lg_reply lg_http_reply_as(const char *buf, size_t len, int closing) {
    const char *head_end = len >= 4 ? memmem(buf, len, "\r\n\r\n", 4) : NULL;
    if (head_end == NULL) return len > LG_MAX_HEADER_BYTES ? LG_DEFER : LG_INCOMPLETE;
    const char *p = buf;
    const char *line_end = memmem(p, (size_t)(head_end - p) + 2, "\r\n", 2);
    /* Status line: "HTTP/1.x SSS ..." with a 2xx status; HTTP/1.0 may close: defer. */
    if (line_end - p < 12 || memcmp(p, "HTTP/1.", 7) != 0 || p[8] != ' ') return LG_DEFER;
    if (!closing && p[7] != '1') return LG_DEFER;
    const char *code = p + 9;
    const char *code_end = memchr(code, ' ', (size_t)(line_end - code));
    if (code_end == NULL) code_end = line_end;
    long long status = digits(code, code_end, 3);
    if (status < 200 || status >= 300) return LG_DEFER;
    long long content_length = -1;
    for (p = line_end + 2; p < head_end + 2; p = line_end + 2) {
        line_end = memmem(p, (size_t)(head_end + 2 - p), "\r\n", 2);
        const char *colon = memchr(p, ':', (size_t)(line_end - p));
        const char *name = p, *name_end = colon ? colon : line_end;
        trim(&name, &name_end);
        const char *value = colon ? colon + 1 : line_end, *value_end = line_end;
        trim(&value, &value_end);
        if (ieq(name, name_end, "content-length")) {
            content_length = digits(value, value_end, 15);
            if (content_length < 0) return LG_DEFER;
        } else if (ieq(name, name_end, "transfer-encoding")) {
            return LG_DEFER;
        } else if (!closing && ieq(name, name_end, "connection")) {
            /* Connection may say close (or list tokens): Python's http_closes decides. */
            if (!ieq(value, value_end, "keep-alive")) return LG_DEFER;
        }
    }
    if (content_length < 0) return LG_DEFER;
    size_t total = (size_t)(head_end - buf) + 4 + (size_t)content_length;
    if (len < total) return LG_INCOMPLETE;
    return len == total ? LG_COMPLETE : LG_DEFER;
}

enum lg_reply lg_echo_reply(const char *buf, size_t len, const char *req, size_t reqlen) {
    if (len < reqlen) return LG_INCOMPLETE;
    return len == reqlen && memcmp(buf, req, reqlen) == 0 ? LG_COMPLETE : LG_DEFER;
}
