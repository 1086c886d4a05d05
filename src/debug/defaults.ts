// Constants shared by the debug server and its clients (the CLI), without loading fastify.

/** Where the debug endpoint listens unless told otherwise: kube-proxy's metrics port, on loopback. */
export const DEFAULT_DEBUG_ADDRESS = '127.0.0.1:10249';

/**
 * What /proxyMode answers. kube-proxy answers its mode ('iptables', 'ipvs', 'nftables'); tools such
 * as the Kubernetes e2e suite read it to decide which mode-specific checks apply. socklb is none of
 * those (no DNAT rules, no IPVS virtual servers), so it names itself rather than pretend.
 */
export const PROXY_MODE = 'socklb';
