/*
 * parse_only.c: the floor for the compile benchmark. Reads one file, parses
 * it with tree-sitter-typescript, visits every node of the tree once with a
 * cursor (counting them) and prints the count. It does nothing skenec would
 * do after parsing, so `skenec build` time over parse_only time is the cost of
 * Skene's own passes.
 *
 * Usage: parse_only FILE. Exit 0 and "nodes N" on stdout; exit 1 if the tree
 * holds an ERROR or MISSING node (the first one's line:col on stderr), so the
 * benchmark generator can be checked with it; exit 2 on usage or I/O errors.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tree_sitter_typescript.h"

/* Reads all of PATH into a malloc'd buffer (caller frees); NULL on error. */
static char *read_file(const char *path, uint32_t *len_out)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t cap = 0, len = 0;

    if (f == NULL) {
        fprintf(stderr, "parse_only: %s: %s\n", path, strerror(errno));
        return NULL;
    }
    for (;;) {
        if (len == cap) {
            size_t ncap = cap ? cap * 2 : 1 << 16;
            char *nbuf = realloc(buf, ncap);
            if (nbuf == NULL) {
                fprintf(stderr, "parse_only: out of memory\n");
                goto fail;
            }
            buf = nbuf;
            cap = ncap;
        }
        size_t n = fread(buf + len, 1, cap - len, f);
        len += n;
        if (n == 0)
            break;
    }
    if (ferror(f)) {
        fprintf(stderr, "parse_only: %s: read error\n", path);
        goto fail;
    }
    if (len > UINT32_MAX) {
        fprintf(stderr, "parse_only: %s: file too large\n", path);
        goto fail;
    }
    fclose(f);
    *len_out = (uint32_t)len;
    return buf;
fail:
    free(buf);
    fclose(f);
    return NULL;
}

/*
 * Visits every node in document order once. Returns the number of nodes and
 * sets *bad to the first ERROR or MISSING node, if any. Cost: O(nodes).
 */
static uint64_t walk(TSNode root, TSNode *bad, bool *found_bad)
{
    TSTreeCursor cursor = ts_tree_cursor_new(root);
    uint64_t count = 0;

    *found_bad = false;
    for (;;) {
        TSNode node = ts_tree_cursor_current_node(&cursor);
        count++;
        if (!*found_bad && (ts_node_is_missing(node) ||
                            strcmp(ts_node_type(node), "ERROR") == 0)) {
            *bad = node;
            *found_bad = true;
        }
        if (ts_tree_cursor_goto_first_child(&cursor))
            continue;
        while (!ts_tree_cursor_goto_next_sibling(&cursor)) {
            if (!ts_tree_cursor_goto_parent(&cursor)) {
                ts_tree_cursor_delete(&cursor);
                return count;
            }
        }
    }
}

int main(int argc, char **argv)
{
    const TSLanguage *lang = tree_sitter_typescript();
    TSParser *parser = NULL;
    TSTree *tree = NULL;
    char *source = NULL;
    uint32_t len = 0;
    int status = 2;

    if (argc != 2) {
        fprintf(stderr, "usage: parse_only FILE\n");
        return 2;
    }
    source = read_file(argv[1], &len);
    if (source == NULL)
        goto done;
    parser = ts_parser_new();
    if (parser == NULL || !ts_parser_set_language(parser, lang)) {
        fprintf(stderr, "parse_only: cannot load the TypeScript grammar\n");
        goto done;
    }
    tree = ts_parser_parse_string(parser, NULL, source, len);
    if (tree == NULL) {
        fprintf(stderr, "parse_only: parse returned no tree\n");
        goto done;
    }

    TSNode bad = {0};
    bool found_bad = false;
    uint64_t count = walk(ts_tree_root_node(tree), &bad, &found_bad);
    printf("nodes %llu\n", (unsigned long long)count);
    if (found_bad) {
        TSPoint p = ts_node_start_point(bad);
        fprintf(stderr, "%s:%u:%u: error: %s node in the syntax tree\n",
                argv[1], p.row + 1, p.column + 1,
                ts_node_is_missing(bad) ? "MISSING" : "ERROR");
        status = 1;
        goto done;
    }
    status = 0;
done:
    if (tree != NULL)
        ts_tree_delete(tree);
    if (parser != NULL)
        ts_parser_delete(parser);
    free(source);
    return status;
}
