/*
 * util/uuid.c — version 4 UUID text (see uuid.h).
 */
#include "util/uuid.h"

void op_uuid_v4_text(uint8_t b[16], char out[OP_UUID_TEXT_LEN + 1])
{
    static const char hex[] = "0123456789abcdef";
    b[6] = (uint8_t)((b[6] & 0x0f) | 0x40);
    b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);
    int o = 0;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10) out[o++] = '-';
        out[o++] = hex[b[i] >> 4];
        out[o++] = hex[b[i] & 15];
    }
    out[o] = '\0';
}
