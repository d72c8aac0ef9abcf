/*
 * abi_check.c: smoke test for the grammar build. Loads the pinned TypeScript
 * grammar into the system libtree-sitter (which refuses an incompatible ABI),
 * parses a one-line config and checks the tree has no error.
 * Exit 0 on success, 1 with a message on stderr otherwise.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tree_sitter_typescript.h"

int main(void)
{
    static const char source[] = "export default 1;";
    const TSLanguage *lang = tree_sitter_typescript();
    TSParser *parser = NULL;
    TSTree *tree = NULL;
    int status = 1;

    parser = ts_parser_new();
    if (parser == NULL) {
        fprintf(stderr, "grammar_abi: ts_parser_new failed\n");
        goto done;
    }
    if (!ts_parser_set_language(parser, lang)) {
        fprintf(stderr,
                "grammar_abi: language ABI %u refused by libtree-sitter "
                "(accepts %d..%d)\n",
                ts_language_version(lang),
                TREE_SITTER_MIN_COMPATIBLE_LANGUAGE_VERSION,
                TREE_SITTER_LANGUAGE_VERSION);
        goto done;
    }
    tree = ts_parser_parse_string(parser, NULL, source,
                                  (uint32_t)strlen(source));
    if (tree == NULL) {
        fprintf(stderr, "grammar_abi: parse returned no tree\n");
        goto done;
    }
    TSNode root = ts_tree_root_node(tree);
    if (ts_node_has_error(root)) {
        char *sexp = ts_node_string(root);
        fprintf(stderr, "grammar_abi: parse error in \"%s\": %s\n", source,
                sexp);
        free(sexp);
        goto done;
    }
    if (strcmp(ts_node_type(root), "program") != 0) {
        fprintf(stderr, "grammar_abi: root is %s, expected program\n",
                ts_node_type(root));
        goto done;
    }
    printf("grammar_abi: ABI %u, parsed \"%s\" as %s with %u children\n",
           ts_language_version(lang), source, ts_node_type(root),
           ts_node_child_count(root));
    status = 0;
done:
    if (tree != NULL)
        ts_tree_delete(tree);
    if (parser != NULL)
        ts_parser_delete(parser);
    return status;
}
