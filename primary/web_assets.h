/*
 * primary/web_assets.h — the dashboard's static files (web/), embedded at build time by
 * scripts/embed-web.py into a generated C file: one entry per file, content-hashed URLs for everything but
 * the HTML pages, and the ETag and Subresource Integrity value of each.
 */
#ifndef OP_PRIMARY_WEB_ASSETS_H
#define OP_PRIMARY_WEB_ASSETS_H

#include <stddef.h>

struct op_web_asset {
    const char *name;         /* file name in web/, e.g. "app.js" */
    const char *url;          /* "/assets/app.<hash>.js"; "" for HTML pages (served at dashboard routes) */
    const char *content_type; /* static string */
    const unsigned char *data;
    size_t len;
    const char *etag;      /* quoted, from the SHA-256 of data */
    const char *integrity; /* "sha256-<base64>" */
};

extern const struct op_web_asset op_web_assets[];
extern const int op_web_nassets;

#endif
