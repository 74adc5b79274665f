/*
 * tls_lib - see tls_lib.h.
 *
 * The table is process-wide state, as the library it points into is: one
 * dlopen per process, shared by tls.c and the worker's TLS fronts.
 */
#include "build_config.h"

#include <stdio.h>

#include "common/tls_lib.h"

#ifdef ENABLE_TLS

#include <dlfcn.h>
#include <string.h>

static struct tls_lib lib;
static int lib_loaded;

const struct tls_lib *
tls_lib(void)
{
    return lib_loaded ? &lib : NULL;
}

/* The functions' names in the table's order, each NUL-terminated, without
 * their common prefix (it is added at load: 7 bytes a name less in .rodata). */
#define TLS_LIB_PREFIX "gnutls_"
#define TLS_LIB_NAME(name) #name "\0"
static const char lib_names[] = TLS_LIB_FUNCTIONS(TLS_LIB_NAME) "free\0";
#undef TLS_LIB_NAME
#define TLS_LIB_COUNT(name) +1
enum { LIB_FUNCTIONS = 0 TLS_LIB_FUNCTIONS(TLS_LIB_COUNT) };
#undef TLS_LIB_COUNT

/* The table is LIB_FUNCTIONS function pointers, then free_fn: filled slot by
 * slot in lib_names' order (one loop, not a call per function: the loader is
 * in every build, its text counts against the binary's budget). */
_Static_assert(sizeof(struct tls_lib) == (LIB_FUNCTIONS + 1) * sizeof(void *),
               "the table is one pointer per name, unpadded");
/* Every name, with its prefix, fits the loader's buffer. */
#define TLS_LIB_NAME_MAX 64
#define TLS_LIB_FITS(name)                                                                         \
    _Static_assert(sizeof(TLS_LIB_PREFIX #name) <= TLS_LIB_NAME_MAX, TLS_LIB_PREFIX #name);
TLS_LIB_FUNCTIONS(TLS_LIB_FITS)
#undef TLS_LIB_FITS

int
tls_lib_load(const char *soname, char *msg, size_t msg_size)
{
    if (lib_loaded)
        return 0;
    if (soname == NULL)
        soname = GNUTLS_SONAME;
    void *handle = dlopen(soname, RTLD_NOW | RTLD_LOCAL);
    if (handle == NULL) {
        const char *err = dlerror();
        snprintf(msg, msg_size, "cannot load GnuTLS (%s): %s", soname,
                 err != NULL ? err : "dlopen failed");
        return -1;
    }
    struct tls_lib t;
    unsigned char *slot = (unsigned char *)&t;
    char name[TLS_LIB_NAME_MAX] = TLS_LIB_PREFIX;
    for (const char *n = lib_names; *n != '\0';) {
        size_t len = strlen(n);
        /* It fits: TLS_LIB_FITS above. */
        memcpy(name + sizeof(TLS_LIB_PREFIX) - 1, n, len + 1);
        n += len + 1;
        /* No GnuTLS function is at address 0: NULL is a failure, dlerror's. */
        void *p = dlsym(handle, name);
        if (p == NULL) {
            const char *err = dlerror();
            snprintf(msg, msg_size, "%s has no %s: %s", soname, name, err != NULL ? err : "NULL");
            (void)dlclose(handle);
            return -1;
        }
        /* POSIX: dlsym's address of a function converts to a pointer to it
         * (of its type: the slot's, from GnuTLS's prototype). */
        memcpy(slot, &p, sizeof(p));
        slot += sizeof(p);
    }
    lib = t;
    lib_loaded = 1;
    return 0;
}

#else /* !ENABLE_TLS */

int
tls_lib_load(const char *soname, char *msg, size_t msg_size)
{
    (void)soname;
    snprintf(msg, msg_size, "--tls-cert/--tls-key: not built in (configured with --disable-tls)");
    return -1;
}

#endif
