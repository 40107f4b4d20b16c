/* Unit: worker_allow, the exec allow-list. Names match bare argv[0] only,
 * absolute paths match exactly, and the list syntax is checked. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "worker_allow.h"

static void test_match(void **state) {
    (void)state;
    worker_allow_t a = {0};
    char why[256];
    assert_int_equal(worker_allow_add(&a, "true,sh", why, sizeof why), 0);
    assert_int_equal(worker_allow_add(&a, "/usr/bin/convert", why, sizeof why), 0);
    assert_int_equal(a.n, 3);
    assert_true(worker_allow_check(&a, "true"));
    assert_true(worker_allow_check(&a, "sh"));
    assert_true(worker_allow_check(&a, "/usr/bin/convert"));
    /* A name never matches a path, and a path never a name or another path. */
    assert_false(worker_allow_check(&a, "/bin/true"));
    assert_false(worker_allow_check(&a, "./true"));
    assert_false(worker_allow_check(&a, "/tmp/x/sh"));
    assert_false(worker_allow_check(&a, "convert"));
    assert_false(worker_allow_check(&a, "/usr/bin/convert2"));
    assert_false(worker_allow_check(&a, "/usr/bin/conv"));
    assert_false(worker_allow_check(&a, "tru"));
    assert_false(worker_allow_check(&a, "truex"));
    assert_false(worker_allow_check(&a, "rm"));
    assert_false(worker_allow_check(&a, ""));
    assert_false(worker_allow_check(&a, NULL));
    char d[256];
    worker_allow_describe(&a, d, sizeof d);
    assert_string_equal(d, "true,sh,/usr/bin/convert");
    char small[8];
    worker_allow_describe(&a, small, sizeof small);
    assert_true(strlen(small) < sizeof small);
    /* any allows everything; NULL is "no list". */
    worker_allow_t any = {.any = true};
    assert_true(worker_allow_check(&any, "rm"));
    assert_true(worker_allow_check(NULL, "rm"));
    worker_allow_describe(&any, d, sizeof d);
    assert_string_equal(d, "any");
}

static void test_syntax(void **state) {
    (void)state;
    worker_allow_t a = {0};
    char why[256];
    assert_int_equal(worker_allow_add(&a, "", why, sizeof why), -1);
    assert_int_equal(worker_allow_add(&a, "a,,b", why, sizeof why), -1);
    assert_non_null(strstr(why, "empty entry"));
    assert_int_equal(worker_allow_add(&a, "bin/sh", why, sizeof why), -1);
    assert_non_null(strstr(why, "absolute path"));
    assert_int_equal(worker_allow_add(&a, "/usr/bin/", why, sizeof why), -1);
    assert_int_equal(worker_allow_add(&a, "a\tb", why, sizeof why), -1);
    assert_int_equal(worker_allow_add(&a, "x,", why, sizeof why), -1);
    char many[WORKER_ALLOW_MAX * 3 + 8] = "";
    for (int i = 0; i <= WORKER_ALLOW_MAX; i++)
        strcat(many, i ? ",p" : "p");
    worker_allow_t b = {0};
    assert_int_equal(worker_allow_add(&b, many, why, sizeof why), -1);
    assert_non_null(strstr(why, "more than"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_match),
        cmocka_unit_test(test_syntax),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
