/* utf8.h - UTF-8 validation for the text formats that must hold valid UTF-8 (the JSON of
 * --json, the XML of --junit) while their strings come from anywhere: paths on the command
 * line, attributes of foreign files. */
#ifndef AB_IO_UTF8_H
#define AB_IO_UTF8_H

#include <stdint.h>

/* The code point starting at s (NUL-terminated): its byte length (1..4) with *cp set, or 0
 * when the bytes at s are not a well-formed UTF-8 character (a stray continuation byte, a
 * truncated sequence, an overlong form, a surrogate, above U+10FFFF) or s is at its NUL.
 * Reads at most 4 bytes and never past the NUL. */
int ab_utf8_char(const char *s, uint32_t *cp);

#endif
