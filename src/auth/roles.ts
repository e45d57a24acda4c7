// Roles and the permissions each grants: the one table every permission check reads.

/** Every permission an rpc can require (the contract's `required_permission` values). */
export const PERMISSIONS = ["query_repos", "report_jobs", "manage_jobs", "manage_webhooks"] as const;

/** A permission an rpc can require. */
export type Permission = (typeof PERMISSIONS)[number];

// The one table. Modelled on the seed system's roles; `service` is for workers, which report jobs but
// read nothing, so a leaked worker token cannot be used to read anyone's jobs.
const TABLE = {
  normal_user: ["query_repos"],
  // manage_webhooks: register webhooks for one's own jobs (every user's too with manage_jobs).
  power_user: ["query_repos", "manage_webhooks"],
  admin: ["query_repos", "report_jobs", "manage_jobs", "manage_webhooks"],
  service: ["report_jobs"],
} as const satisfies Record<string, readonly Permission[]>;

/** A role a token can carry. */
export type Role = keyof typeof TABLE;

/** Every role, in the table's order. */
export const ROLES: readonly Role[] = Object.keys(TABLE) as Role[];

const GRANTS: ReadonlyMap<string, ReadonlySet<Permission>> = new Map(
  ROLES.map((role) => [role, new Set<Permission>(TABLE[role])]),
);

/** True when `value` names a role of the table. */
export function isRole(value: string): value is Role {
  return GRANTS.has(value);
}

/** The permissions a role grants; empty for a string that is not a role (fail closed). */
export function permissionsOf(role: string): ReadonlySet<Permission> {
  return GRANTS.get(role) ?? new Set();
}

/** True when `role` grants `permission`; false for unknown roles and permissions. */
export function hasPermission(role: string, permission: string): boolean {
  return (permissionsOf(role) as ReadonlySet<string>).has(permission);
}
