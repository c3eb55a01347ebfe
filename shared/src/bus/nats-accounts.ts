import { natsAuthConfig, type NatsRole } from "./nats-auth.js";

/** The roles a deployment gives a NATS user each: the five services and outside systems. */
export const DEPLOY_ROLES: readonly NatsRole[] = ["api", "spawner", "poller", "watchdog", "gateway", "outside"];

/** The environment variable holding a role's NATS password, where nats-server reads it (e.g. NATS_API_PASSWORD). */
export function natsPasswordVariable(role: NatsRole): string {
  return `NATS_${role.toUpperCase()}_PASSWORD`;
}

/**
 * The `accounts` block natsAuthConfig writes, with every password a reference to an environment
 * variable of the nats-server (`password: $NATS_API_PASSWORD`), so the file holds no secret and
 * can be kept with the deployment (deploy/nats/accounts.conf). nats-server resolves a `$name` it
 * does not define from its environment; a quoted value would be taken literally, so the
 * references are left bare.
 */
export function natsAccountsTemplate(namespace = ""): string {
  const marker = (role: NatsRole) => `@@${natsPasswordVariable(role)}@@`;
  const users = DEPLOY_ROLES.map((role) => ({ role, user: `fleet-${role}`, password: marker(role) }));
  let conf = natsAuthConfig(users, namespace);
  for (const role of DEPLOY_ROLES) {
    conf = conf.replaceAll(JSON.stringify(marker(role)), `$${natsPasswordVariable(role)}`);
  }
  return conf;
}
