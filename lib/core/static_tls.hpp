// The library's per-thread state sits on every op's path. A shared library
// reaches thread_local variables through a call to __tls_get_addr unless they
// are placed in the static TLS block; these few bytes fit in the space glibc
// keeps for that even when the library is loaded with dlopen.
#pragma once

#if defined(__GNUC__)
#define GRADTAPE_STATIC_TLS __attribute__((tls_model("initial-exec")))
#else
#define GRADTAPE_STATIC_TLS
#endif
