/* A stand-in for libedgetpu.so.1 at the boundary LiteRT touches: the TFLite external-delegate
 * plugin entry points, and libedgetpu's C API edgetpu_version(). $FAKE_EDGETPU picks what it
 * does, as the real library would:
 *   unset or "absent"  no Edge TPU attached: it loads and creates no delegate;
 *   "attached"         it creates a delegate (one that claims no node: the model runs on the
 *                      CPU, so a CPU model gives LiteRT's answers through it);
 *   "crash"            a delegate the runtime crashes on (SIGSEGV): no Prepare, and garbage in
 *                      opaque_delegate_builder, the field runtimes since TensorFlow 2.12 read
 *                      and TensorFlow 2.5's struct (which libedgetpu1-std 16.0 is built
 *                      against) lacks. Users report such crashes with newer runtimes; where
 *                      exactly the real library crashes was not verified (no Coral here).
 * Built by tests/test_backends.py. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct Delegate { /* TfLiteDelegate, tensorflow/lite/core/c/common.h */
    void *data_;
    int (*Prepare)(void *context, struct Delegate *delegate);
    void *CopyFromBufferHandle;
    void *CopyToBufferHandle;
    void *FreeBufferHandle;
    int64_t flags;
    void *opaque_delegate_builder; /* TensorFlow 2.12 on; not in 2.5's struct */
} Delegate;

static int prepare(void *context, Delegate *delegate) {
    (void)context; (void)delegate;
    return 0; /* kTfLiteOk, having replaced no node */
}

const char *edgetpu_version(void) {
    return "BuildLabel(COMPILER=stand-in,DATE=redacted,TIME=redacted), RuntimeVersion(14)";
}

void *tflite_plugin_create_delegate(char **keys, char **values, size_t count,
                                    void (*report_error)(const char *)) {
    (void)keys; (void)values; (void)count; (void)report_error;
    const char *mode = getenv("FAKE_EDGETPU");
    if (mode == NULL || strcmp(mode, "absent") == 0) return NULL;
    Delegate *delegate = calloc(1, sizeof *delegate);
    if (delegate == NULL) return NULL;
    delegate->Prepare = prepare;
    if (strcmp(mode, "crash") == 0) {
        delegate->Prepare = NULL; /* so the runtime follows the builder instead */
        delegate->opaque_delegate_builder = (void *)0x10;
    }
    return delegate;
}

void tflite_plugin_destroy_delegate(void *delegate) { free(delegate); }
