#ifndef REGIOND_CMICROHTTPD_SHIM_H
#define REGIOND_CMICROHTTPD_SHIM_H

#include <stdint.h>
#include <sys/types.h>
#include <sys/socket.h>
#include <microhttpd.h>

/// MHD_start_daemon is C-variadic, which Swift cannot call: pass every
/// option through one MHD_OPTION_ARRAY instead.
static inline struct MHD_Daemon *regiond_start_daemon(unsigned int flags,
                                                      MHD_AcceptPolicyCallback accept,
                                                      void *accept_context,
                                                      MHD_AccessHandlerCallback handler,
                                                      void *handler_context,
                                                      const struct MHD_OptionItem *options) {
    return MHD_start_daemon(flags, 0, accept, accept_context, handler, handler_context,
                            MHD_OPTION_ARRAY, options, MHD_OPTION_END);
}

/// MHD_get_connection_info is C-variadic too: the client's address, or NULL.
static inline const struct sockaddr *regiond_client_address(struct MHD_Connection *connection) {
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(connection, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    return info == NULL ? NULL : info->client_addr;
}

/// The same, for the socket context the connection notification set.
static inline void *regiond_socket_context(struct MHD_Connection *connection) {
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(connection, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return info == NULL ? NULL : info->socket_context;
}

#endif
