/*
 * util/uuid.h — the text form of a random (version 4) UUID, from 16 random bytes the caller got from its
 * own source of randomness.
 */
#ifndef OP_UTIL_UUID_H
#define OP_UTIL_UUID_H

#include <stdint.h>

#define OP_UUID_TEXT_LEN 36 /* without the NUL */

/* Sets the version and variant bits of b and writes "xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx" (lower case). */
void op_uuid_v4_text(uint8_t b[16], char out[OP_UUID_TEXT_LEN + 1]);

#endif
