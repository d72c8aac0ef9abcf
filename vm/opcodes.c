/* opcodes.c: the opcode and outcome name tables, generated from SK_OPCODES / SK_OUTCOMES. */
#include "opcodes.h"

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
