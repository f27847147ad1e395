/* utf8.c - UTF-8 validation (utf8.h), after RFC 3629's table of well-formed byte sequences. */
#include "io/utf8.h"

int ab_utf8_char(const char *s, uint32_t *cp)
{
    const unsigned char *u = (const unsigned char *)s;
    int len;
    uint32_t c, min;
    if (u[0] == 0) return 0;
    if (u[0] < 0x80) {
        *cp = u[0];
        return 1;
    }
    if (u[0] >= 0xC2 && u[0] <= 0xDF) len = 2, c = u[0] & 0x1Fu, min = 0x80;
    else if (u[0] >= 0xE0 && u[0] <= 0xEF) len = 3, c = u[0] & 0x0Fu, min = 0x800;
    else if (u[0] >= 0xF0 && u[0] <= 0xF4) len = 4, c = u[0] & 0x07u, min = 0x10000;
    else return 0; /* a continuation byte, C0 / C1 (overlong 2-byte), F5..FF */
    for (int i = 1; i < len; i++) {
        if ((u[i] & 0xC0) != 0x80) return 0; /* also stops at the NUL */
        c = c << 6 | (u[i] & 0x3Fu);
    }
    if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) return 0;
    *cp = c;
    return len;
}
