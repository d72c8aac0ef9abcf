/*
 * opcodes.h: the Skene instruction set, defined once.
 *
 * Every instruction is 32 bits. The formats (fields are read and built only through the macros below):
 *
 *   31          24 23          16 15           8 7            0
 *  +--------------+--------------+--------------+--------------+
 *  |      C       |      B       |      A       |      op      |  iABC
 *  +--------------+--------------+--------------+--------------+
 *  |             Bx (16)         |      A       |      op      |  iABx
 *  +-----------------------------+--------------+--------------+
 *  |     sBx (16, excess 32767)  |      A       |      op      |  iAsBx
 *  +-----------------------------+--------------+--------------+
 *  |              sJ (24, excess 2^23-1)        |      op      |  isJ
 *  +--------------------------------------------+--------------+
 *
 * Jumps are relative to the instruction after the jump (pc + 1 + offset), as in Lua.
 *
 * SK_OPCODES is the one table: the enum, the names, the operand kinds that the verifier enforces, the
 * interpreter's dispatch table and the disassembler's comments all come from it. Each row is
 *   X(NAME, format, operand kinds of A B C (or A Bx / A sBx / sJ), synopsis, what it does)
 *
 * Operand kinds (one letter per operand, in order A, B, C; for iABx/iAsBx: A, Bx; for isJ: sJ):
 *   _  unused, must be 0                R  a register read (< the loop's register count)
 *   W  a register written (2 .. count)  P  a register pair A, A+1 written (2 .. count - 1)
 *   K  a constant of the loop           D  an integer constant (ms)
 *   T  a template of the loop           Q  a condition of the loop           E  an effect of the loop
 *   V  an event (trigger) of the loop   J  a jump target inside the loop    O  an outcome (sk_outcome)
 *
 * Registers: R0 holds the subject (the trigger row's id, a string), R1 the trigger row; the compiler
 * allocates the rest. R0 and R1 are read-only (the verifier refuses code that writes them), so the
 * runtime can rely on their types without checking. Opcodes marked "suspends" hand control to the runtime (store, clock, providers);
 * the instance resumes at the next instruction when the result is in, or at the same one when the
 * recovery policy retries it.
 */
#ifndef SK_OPCODES_H
#define SK_OPCODES_H

#include <stdint.h>

#define SK_OPCODES(X) \
  X(NOP,      ABC,  "___", "",                                   "does nothing") \
  X(MOVE,     ABC,  "WR_", "R[A] := R[B]",                       "copies a register") \
  X(LOADK,    ABx,  "WK",  "R[A] := K[Bx]",                      "loads a constant") \
  X(LOADNIL,  ABC,  "W__", "R[A] := nil",                        "clears a register") \
  X(JMP,      sJ,   "J",   "pc += sJ",                           "jumps") \
  X(JMPIF,    AsBx, "RJ",  "if R[A] then pc += sBx",             "jumps when R[A] is truthy") \
  X(JMPIFNOT, AsBx, "RJ",  "if not R[A] then pc += sBx",         "jumps when R[A] is falsy") \
  X(DEADLINE, ABx,  "WD",  "R[A] := now + K[Bx]",                "computes an absolute deadline (ms)") \
  X(SLEEP,    ABC,  "R__", "sleep until R[A]",                   "suspends on a durable timer") \
  X(CHECK,    ABx,  "PQ",  "R[A], R[A+1] := cond[Bx]",           "evaluates a condition once: held (0/1) and first match; suspends for I/O") \
  X(AWAIT,    ABx,  "PQ",  "await cond[Bx] until R[A]; R[A], R[A+1] := held, match", \
                                                                  "waits until the condition holds or the deadline passes; suspends") \
  X(WAITEV,   ABx,  "PV",  "await event[Bx] until R[A]; R[A], R[A+1] := seen, row", \
                                                                  "waits for an event on the subject (deadline nil: forever); suspends") \
  X(RENDER,   ABx,  "WT",  "R[A] := render(tmpl[Bx])",           "renders a template over the registers") \
  X(EFFECT,   ABx,  "WE",  "R[A] := perform(effect[Bx])",        "sends an email, a webhook or a Redis command, once; retried by the recovery policy; suspends") \
  X(END,      ABC,  "O__", "end outcome A",                      "ends the instance")

typedef enum {
#define SK_OP_ENUM(name, fmt, kinds, syn, doc) SK_OP_##name,
  SK_OPCODES(SK_OP_ENUM)
#undef SK_OP_ENUM
  SK_OP_COUNT
} sk_opcode;

typedef enum { SK_FMT_ABC, SK_FMT_ABx, SK_FMT_AsBx, SK_FMT_sJ } sk_opfmt;

typedef struct {
  const char *name;      /* "AWAIT" */
  sk_opfmt fmt;
  const char *kinds;     /* operand kinds, see above */
  const char *synopsis;  /* "R[A] := R[B]" */
  const char *doc;       /* one line */
} sk_opinfo;

/* sk_opinfo_table[op] for op < SK_OP_COUNT; defined in opcodes.c from the table above. */
extern const sk_opinfo sk_opinfo_table[SK_OP_COUNT];

/* The raw operands of insn in the order of its kinds string (v[0] is A, or sJ); returns how many.
   insn's opcode must be < SK_OP_COUNT. */
int sk_insn_operands(uint32_t insn, int32_t v[3]);

/* Outcomes of an instance (END's A operand). */
#define SK_OUTCOMES(X) X(COMPLETED, "completed") X(TIMED_OUT, "timed_out") X(SKIPPED, "skipped") X(FAILED, "failed")
typedef enum {
#define SK_OUTCOME_ENUM(name, text) SK_OUTCOME_##name,
  SK_OUTCOMES(SK_OUTCOME_ENUM)
#undef SK_OUTCOME_ENUM
  SK_OUTCOME_COUNT
} sk_outcome;
const char *sk_outcome_name(unsigned outcome);

/* Field sizes and positions, each derived from the previous one. */
#define SK_SIZE_OP  8
#define SK_SIZE_A   8
#define SK_SIZE_B   8
#define SK_SIZE_C   8
#define SK_SIZE_Bx  (SK_SIZE_B + SK_SIZE_C)
#define SK_SIZE_sJ  (SK_SIZE_A + SK_SIZE_Bx)
#define SK_POS_OP   0
#define SK_POS_A    (SK_POS_OP + SK_SIZE_OP)
#define SK_POS_B    (SK_POS_A + SK_SIZE_A)
#define SK_POS_C    (SK_POS_B + SK_SIZE_B)
#define SK_POS_Bx   SK_POS_B
#define SK_POS_sJ   SK_POS_A

#define SK_MAXARG_A   ((1u << SK_SIZE_A) - 1)
#define SK_MAXARG_B   ((1u << SK_SIZE_B) - 1)
#define SK_MAXARG_C   ((1u << SK_SIZE_C) - 1)
#define SK_MAXARG_Bx  ((1u << SK_SIZE_Bx) - 1)
#define SK_OFFSET_sBx ((int32_t)(SK_MAXARG_Bx >> 1))
#define SK_MAXARG_sJ  ((1u << SK_SIZE_sJ) - 1)
#define SK_OFFSET_sJ  ((int32_t)(SK_MAXARG_sJ >> 1))

#define SK_MASK(n) ((1u << (n)) - 1u)
#define SK_GET(i, pos, size) (((uint32_t)(i) >> (pos)) & SK_MASK(size))

#define SK_GET_OP(i)   ((unsigned)SK_GET(i, SK_POS_OP, SK_SIZE_OP))
#define SK_GETARG_A(i) ((unsigned)SK_GET(i, SK_POS_A, SK_SIZE_A))
#define SK_GETARG_B(i) ((unsigned)SK_GET(i, SK_POS_B, SK_SIZE_B))
#define SK_GETARG_C(i) ((unsigned)SK_GET(i, SK_POS_C, SK_SIZE_C))
#define SK_GETARG_Bx(i) ((unsigned)SK_GET(i, SK_POS_Bx, SK_SIZE_Bx))
#define SK_GETARG_sBx(i) ((int32_t)SK_GET(i, SK_POS_Bx, SK_SIZE_Bx) - SK_OFFSET_sBx)
#define SK_GETARG_sJ(i) ((int32_t)SK_GET(i, SK_POS_sJ, SK_SIZE_sJ) - SK_OFFSET_sJ)

#define SK_CREATE_ABC(o, a, b, c) \
  (((uint32_t)(o) << SK_POS_OP) | ((uint32_t)(a) << SK_POS_A) | ((uint32_t)(b) << SK_POS_B) | ((uint32_t)(c) << SK_POS_C))
#define SK_CREATE_ABx(o, a, bx) (((uint32_t)(o) << SK_POS_OP) | ((uint32_t)(a) << SK_POS_A) | ((uint32_t)(bx) << SK_POS_Bx))
#define SK_CREATE_AsBx(o, a, sbx) SK_CREATE_ABx(o, a, (uint32_t)((int32_t)(sbx) + SK_OFFSET_sBx))
#define SK_CREATE_sJ(o, sj) (((uint32_t)(o) << SK_POS_OP) | ((uint32_t)((int32_t)(sj) + SK_OFFSET_sJ) << SK_POS_sJ))

#endif
