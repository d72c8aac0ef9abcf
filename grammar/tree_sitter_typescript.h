/*
 * tree_sitter_typescript.h: the TypeScript grammar, from the npm package
 * tree-sitter-typescript pinned in grammar/tree-sitter-typescript.lock and
 * built by grammar/CMakeLists.txt as the library skene_ts_typescript.
 */
#ifndef SKENE_TREE_SITTER_TYPESCRIPT_H
#define SKENE_TREE_SITTER_TYPESCRIPT_H

#include <tree_sitter/api.h>

/* The TypeScript (not TSX) language, ABI 14. A static object: never freed. */
const TSLanguage *tree_sitter_typescript(void);

#endif
