/**
 * The settings of the built-in worker `compute`, `tsworker_compute.<name>`
 * (docs/compute.md, docs/settings.md).
 */
export const computeSettings = {
  listen: {
    type: 'string',
    default: '127.0.0.1:3080',
    context: 'postmaster',
    description: 'Address (host:port, or [ipv6]:port) the compute API listens on; port 0 picks a free port.',
  },
  jwks: {
    type: 'string',
    default: '',
    description: 'Path of a JSON Web Key Set file (EdDSA or RS256 public keys) that verifies the API\'s bearer tokens; empty: no authorization, loopback only.',
  },
  compute_id: { type: 'string', default: '', description: 'This compute\'s id: tokens without the admin scope must carry it in their compute_id claim.' },
  spec_path: { type: 'string', default: '', description: 'Path of a spec (compute_ctl\'s ComputeSpec JSON) applied at start and whenever a reload finds it changed.' },
  key_path: { type: 'string', default: '', description: 'Path of the TLS private key (PEM) of the API; with cert_path, the API serves HTTPS.' },
  cert_path: { type: 'string', default: '', description: 'Path of the TLS certificate chain (PEM) of the API.' },
  admin_role: {
    type: 'string',
    default: '',
    description: 'Role whose sessions are not user activity and whose statements /insights leaves out (compute_ctl\'s cloud_admin); empty: the role the worker runs as.',
  },
  privileged_role_name: {
    type: 'string',
    default: 'neon_superuser',
    description: 'Role that roles created by a spec are members of and that gets every privilege on created databases (compute_ctl\'s neon_superuser); empty for none.',
  },
  conninfo: {
    type: 'string',
    default: '',
    superuserOnly: true,
    description: 'libpq key=value pairs overriding how the worker connects to its own server (default: first Unix socket directory, port, as its own role).',
  },
  monitor_interval: { type: 'int', default: 500, min: 50, max: 60_000, unit: 'ms', description: 'Time between two activity checks.' },
} as const;
