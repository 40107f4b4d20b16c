/* Unit: the replacement strings of `farm map` (client/client_subst.c),
 * against what GNU parallel 20221122 prints for the same inputs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "client_subst.h"

/* tmpl for input `in` (number seq) must give `want`. */
static void s_check(const char *tmpl, const char *in, int64_t seq, const char *want) {
    size_t len = 0;
    char *got = cli_subst(tmpl, in, strlen(in), seq, &len);
    assert_non_null(got);
    if (strcmp(got, want) != 0)
        fail_msg("'%s' with input '%s': got '%s', want '%s'", tmpl, in, got, want);
    assert_int_equal(len, strlen(want));
    free(got);
}

/* Every string for one input: {} {.} {/} {//} {/.} */
static void s_all(const char *in, const char *noext, const char *base, const char *dir, const char *base_noext) {
    s_check("{}", in, 1, in);
    s_check("{.}", in, 1, noext);
    s_check("{/}", in, 1, base);
    s_check("{//}", in, 1, dir);
    s_check("{/.}", in, 1, base_noext);
}

static void test_parallel_table(void **state) {
    (void)state;
    /* input            {.}          {/}          {//}    {/.} */
    s_all("x/y.tar.gz", "x/y.tar", "y.tar.gz", "x", "y.tar");
    s_all(".bashrc", "", ".bashrc", ".", "");
    s_all("a.b/c", "a.b/c", "c", "a.b", "c");
    s_all("file", "file", "file", ".", "file");
    s_all("/abs", "/abs", "abs", "/", "abs");
    s_all("dir/", "dir/", "", ".", "");
    s_all("/", "/", "", "/", "");
    s_all("a/.hidden", "a/", ".hidden", "a", "");
    s_all("", "", "", ".", "");
    s_all("x.", "x", "x.", ".", "x");
    s_all("dir/file.txt", "dir/file", "file.txt", "dir", "file");
    s_all("..", ".", "..", ".", ".");
    s_all("a..b", "a.", "a..b", ".", "a.");
    s_all("dir//f.c", "dir//f", "f.c", "dir", "f");
    s_all("a//b//", "a//b//", "", "a", "");
    s_all("//x", "//x", "x", "/", "x");
    s_all("photo 1.jpg", "photo 1", "photo 1.jpg", ".", "photo 1");
}

static void test_seq_and_embedding(void **state) {
    (void)state;
    s_check("{#}", "anything", 1, "1");
    s_check("{#}", "anything", 1234567, "1234567");
    s_check("out-{#}.txt", "a", 42, "out-42.txt");
    s_check("x{}y", "a", 1, "xay");
    s_check("{.}.png", "dir/img.tif", 1, "dir/img.png");
    s_check("--in={} --out={/.}.gz", "/data/log.txt", 3, "--in=/data/log.txt --out=log.gz");
    s_check("{}{}", "ab", 1, "abab");
    /* Not replacement strings: left as they are. */
    s_check("{", "a", 1, "{");
    s_check("}{", "a", 1, "}{");
    s_check("{x}", "a", 1, "{x}");
    s_check("{%}", "a", 1, "{%}");
    s_check("{{}}", "a", 1, "{a}");
    s_check("no tokens", "a", 1, "no tokens");
    s_check("", "a", 1, "");
    /* Inputs are bytes: quotes, spaces, dollars stay as they are (no shell). */
    s_check("{}", "it's $HOME \"x\"", 1, "it's $HOME \"x\"");
    s_check("{/}", "d\xc3\xa9j\xc3\xa0/\xc3\xa9t\xc3\xa9.txt", 1, "\xc3\xa9t\xc3\xa9.txt");
}

static void test_has(void **state) {
    (void)state;
    assert_true(cli_subst_has("{}"));
    assert_true(cli_subst_has("a{.}b"));
    assert_true(cli_subst_has("{/}"));
    assert_true(cli_subst_has("{//}"));
    assert_true(cli_subst_has("{/.}"));
    assert_true(cli_subst_has("{#}"));
    assert_true(cli_subst_has("{{}"));
    assert_false(cli_subst_has(""));
    assert_false(cli_subst_has("gzip"));
    assert_false(cli_subst_has("{x}"));
    assert_false(cli_subst_has("{%}"));
    assert_false(cli_subst_has("{ }"));
    assert_false(cli_subst_has("{"));
}

static void test_long_input(void **state) {
    (void)state;
    size_t n = 1 << 20;
    char *in = malloc(n + 1);
    assert_non_null(in);
    memset(in, 'a', n);
    in[n] = '\0';
    in[n - 4] = '.';
    size_t len;
    char *out = cli_subst("{}|{.}|{#}", in, n, 7, &len);
    assert_non_null(out);
    assert_int_equal(len, n + 1 + (n - 4) + 1 + 1);
    assert_int_equal(out[n], '|');
    assert_int_equal(out[len - 1], '7');
    free(out);
    free(in);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parallel_table),
        cmocka_unit_test(test_seq_and_embedding),
        cmocka_unit_test(test_has),
        cmocka_unit_test(test_long_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
