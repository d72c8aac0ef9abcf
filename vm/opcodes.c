/* opcodes.c: the opcode and outcome name tables, generated from SK_OPCODES / SK_OUTCOMES. */
#include "opcodes.h"

#include <assert.h>

const sk_opinfo sk_opinfo_table[SK_OP_COUNT] = {
#define SK_OP_INFO(name, fmt, kinds, syn, doc) {#name, SK_FMT_##fmt, kinds, syn, doc},
  SK_OPCODES(SK_OP_INFO)
#undef SK_OP_INFO
};

const char *sk_outcome_name(unsigned outcome) {
  static const char *const names[SK_OUTCOME_COUNT] = {
#define SK_OUTCOME_NAME(name, text) text,
    SK_OUTCOMES(SK_OUTCOME_NAME)
#undef SK_OUTCOME_NAME
  };
  return outcome < SK_OUTCOME_COUNT ? names[outcome] : "?";
}

int sk_insn_operands(uint32_t insn, int32_t v[3]) {
  unsigned op = SK_GET_OP(insn);
  assert(op < SK_OP_COUNT);
  switch (sk_opinfo_table[op].fmt) {
  case SK_FMT_ABC:
    v[0] = (int32_t)SK_GETARG_A(insn);
    v[1] = (int32_t)SK_GETARG_B(insn);
    v[2] = (int32_t)SK_GETARG_C(insn);
    return 3;
  case SK_FMT_ABx:
    v[0] = (int32_t)SK_GETARG_A(insn);
    v[1] = (int32_t)SK_GETARG_Bx(insn);
    return 2;
  case SK_FMT_AsBx:
    v[0] = (int32_t)SK_GETARG_A(insn);
    v[1] = SK_GETARG_sBx(insn);
    return 2;
  case SK_FMT_sJ: v[0] = SK_GETARG_sJ(insn); return 1;
  }
  assert(0 && "unknown format");
  return 0;
}
