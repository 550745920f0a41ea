/*
 * cx_util.h - small helpers shared by the daemon and the tools (command-line
 * parsing), with no dependency on any layer.
 */
#ifndef CXFS_CX_UTIL_H
#define CXFS_CX_UTIL_H

#include <stdint.h>

/* Parse "123", "4K", "64M", "2G", "1T" (binary units); 0 on error or zero. */
uint64_t cx_parse_size(const char *s);

#endif
