/* A stand-in for libedgetpu.so.1 at the boundary LiteRT touches: the TFLite external-delegate
 * plugin entry points. Like the real library when no Edge TPU is attached, it loads and
 * creates no delegate, so LiteRT's load_delegate() fails. Built by tests/test_backends.py. */
#include <stddef.h>

void *tflite_plugin_create_delegate(char **keys, char **values, size_t count,
                                    void (*report_error)(const char *)) {
    (void)keys; (void)values; (void)count; (void)report_error;
    return NULL;
}

void tflite_plugin_destroy_delegate(void *delegate) { (void)delegate; }
