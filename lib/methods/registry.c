/* registry.c - the static table of methods (ggml's op table idea): one row per method, in
 * catalogue order (../shared/spec/methods.md). Adding a method = writing its file and a row here;
 * the generic battery in tests/test_methods.c then runs it. */
#include "methods/method.h"

extern const struct ab_method ab_method_dense, ab_method_window, ab_method_streaming;

const struct ab_method *const ab_methods[] = {
    &ab_method_dense,
    /* static */
    &ab_method_window,
    &ab_method_streaming,
};
const int ab_n_methods = sizeof ab_methods / sizeof ab_methods[0];
