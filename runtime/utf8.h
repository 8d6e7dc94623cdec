/* utf8.h: text made valid UTF-8 before it goes into JSON, which must be UTF-8 (RFC
 * 8259): a safetensors header, `bpc eval --json`. File names and the class names of a
 * data set are bytes, not text, so they may hold anything. */
#ifndef BPC_UTF8_H
#define BPC_UTF8_H

/* The length (1-4) of the well-formed UTF-8 sequence at s, or 0 when the byte at s
 * does not start one (RFC 3629: no overlong forms, no surrogates, nothing above
 * U+10FFFF). s is NUL-terminated; a NUL is never part of a sequence. */
int bp_utf8_seq(const unsigned char *s);

/* A malloc'd copy of s in which every byte that is not part of a well-formed sequence
 * is replaced by U+FFFD (the replacement character). NULL when out of memory. */
char *bp_utf8_fix(const char *s);

#endif
