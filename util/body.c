/*
 * util/body.c — see body.h.
 */
#include "util/body.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int op_body_append(char **buf, size_t *len, size_t max, const char *data, size_t n)
{
    if (n > max || *len > max - n) return -EFBIG;
    char *nb = realloc(*buf, *len + n + 1);
    if (!nb) return -ENOMEM;
    memcpy(nb + *len, data, n);
    *len += n;
    nb[*len] = '\0';
    *buf = nb;
    return 0;
}
