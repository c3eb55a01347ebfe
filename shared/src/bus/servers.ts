/**
 * The servers of a NATS_URL: one URL, or several separated by commas (the nodes of a cluster). The
 * client is given them all, so it can connect to any and reconnect to another when one goes away.
 */
export function natsServers(url: string | readonly string[]): string[] {
  const list = typeof url === "string" ? url.split(",") : url;
  return list.map((s) => s.trim()).filter(Boolean);
}
