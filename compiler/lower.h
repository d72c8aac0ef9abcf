/* lower.h: checked config -> in-memory bytecode module (lower.c). */
#ifndef SK_LOWER_H
#define SK_LOWER_H

#include "../vm/skb.h"
#include "config.h"

/* Builds the module for a config that checked without errors. The caller frees it with sk_module_free.
   Reports limits it hits (e.g. too many registers) to d. */
sk_module *sk_lower(const sk_config *cfg, const sk_source *src, sk_diags *d);
const char *sk_compiler_version(void);

#endif
