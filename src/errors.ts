// Every error socklb reports has a stable SOCKLB_ERR_* code, defined here once and never reused,
// so operators and scripts can match on the code rather than the message.

export const ErrorCodes = {
  /** A libbpf or bpf() call failed; the error carries errno and the operation. */
  BPF: 'SOCKLB_ERR_BPF',
  /** A required field of a Kubernetes object is missing. */
  MISSING_FIELD: 'SOCKLB_ERR_MISSING_FIELD',
  /** A field holds a value of the wrong type or shape. */
  INVALID_FIELD: 'SOCKLB_ERR_INVALID_FIELD',
  /** An IP address field does not parse, or has the wrong family. */
  INVALID_IP: 'SOCKLB_ERR_INVALID_IP',
  /** A port number is outside 1-65535. */
  PORT_RANGE: 'SOCKLB_ERR_PORT_RANGE',
  /** A protocol other than TCP or UDP. */
  UNSUPPORTED_PROTOCOL: 'SOCKLB_ERR_UNSUPPORTED_PROTOCOL',
  /** A service has more backends than one service may hold. */
  TOO_MANY_BACKENDS: 'SOCKLB_ERR_TOO_MANY_BACKENDS',
  /** A BPF map has no room for the entries a service needs. */
  MAP_FULL: 'SOCKLB_ERR_MAP_FULL',
  /** A manifest document is not valid YAML (or the file ends inside one). */
  MANIFEST_SYNTAX: 'SOCKLB_ERR_MANIFEST_SYNTAX',
  /** A manifest document is not an object socklb reads (kind/apiVersion). */
  MANIFEST_KIND: 'SOCKLB_ERR_MANIFEST_KIND',
  /** Two objects claim the same frontend (address, port, protocol). */
  FRONTEND_CONFLICT: 'SOCKLB_ERR_FRONTEND_CONFLICT',
  /** A command-line option or setting is wrong. */
  BAD_OPTION: 'SOCKLB_ERR_BAD_OPTION',
  /** The host lacks something the agent needs (bpffs, cgroup2, a kernel feature). */
  HOST: 'SOCKLB_ERR_HOST',
  /** The agent lacks a Linux capability it needs (a container's securityContext). */
  CAPABILITY: 'SOCKLB_ERR_CAPABILITY',
} as const;

export type ErrorCode = (typeof ErrorCodes)[keyof typeof ErrorCodes];

/** An error with a stable code. */
export class SocklbError extends Error {
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'SocklbError';
    this.code = code;
  }
}

/** What an operator needs to find and fix a rejected Kubernetes object. */
export interface ObjectProblem {
  kind: string;
  namespace: string;
  name: string;
  /** JSON path of the offending field, e.g. `spec.ports[1].port`; empty for the whole object. */
  field: string;
  code: ErrorCode;
  message: string;
}

/** Formats a problem as one log line: `Service default/web: spec.ports[0].port: ...`. */
export function formatProblem(p: ObjectProblem): string {
  const where = p.field ? `${p.field}: ` : '';
  return `${p.code}: ${p.kind} ${p.namespace}/${p.name}: ${where}${p.message}`;
}
