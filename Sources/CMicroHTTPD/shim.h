#ifndef REGIOND_CMICROHTTPD_SHIM_H
#define REGIOND_CMICROHTTPD_SHIM_H

#include <stdint.h>
#include <sys/types.h>
#include <sys/socket.h>
#include <microhttpd.h>

/// MHD_start_daemon is C-variadic, which Swift cannot call: pass every
/// option through one MHD_OPTION_ARRAY instead.
static inline struct MHD_Daemon *regiond_start_daemon(unsigned int flags,
                                                      MHD_AccessHandlerCallback handler,
                                                      void *handler_context,
                                                      const struct MHD_OptionItem *options) {
    return MHD_start_daemon(flags, 0, NULL, NULL, handler, handler_context,
                            MHD_OPTION_ARRAY, options, MHD_OPTION_END);
}

#endif
