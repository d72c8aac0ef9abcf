/*
 * dump.h: the disassembler and the auditor's view of a module (`skenec dump`).
 *
 * sk_dump prints, per loop, a summary an auditor can read (trigger, condition, waits and timeouts, which
 * email goes to whom with what text, which Redis keys are read and written, the retry policy), then the
 * listing: pc, line:col, opcode, raw operands and a comment with the operands resolved, in the spirit of
 * `luac -l` and SQLite's EXPLAIN. The output is deterministic and depends only on the module's records:
 * no file hash, no path of the .skb, so a module compiled in memory and the same module loaded from a
 * file print the same text.
 *
 * Both functions require a *verified* module (sk_module_load's, or a compiler's that would pass it): the
 * verifier's guarantees are asserted, not re-checked.
 */
#ifndef SK_DUMP_H
#define SK_DUMP_H

#include <stdint.h>
#include <stdio.h>

#include "skb.h"

/* Writes the whole dump of m to out. Returns 0, or -1 when writing fails or memory runs out. */
int sk_dump(const sk_module *m, FILE *out);

/*
 * Formats instruction pc (loop-relative) of loop `loop` as one line without a newline, e.g.
 *   "DEADLINE  2 0         ; R2 := now + 5m"
 * into buf (cap bytes, always NUL-terminated when cap > 0, truncated like snprintf). Returns the length
 * of the full text (as snprintf does), or -1 when memory runs out. loop < m->nloops and
 * pc < m->loops[loop].code_count are required.
 */
int sk_disasm_insn(const sk_module *m, uint32_t loop, uint32_t pc, char *buf, size_t cap);

/* Writes a duration in its shortest exact unit: 300000 -> "5m", 1500 -> "1500ms", 0 -> "0ms".
 * Same contract as snprintf. */
int sk_format_duration(uint64_t ms, char *buf, size_t cap);

#endif
