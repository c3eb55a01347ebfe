import { FleetError } from "@fleet/shared";

/** A small client of the fleet's HTTP api for the CLI. */
export class ApiClient {
  constructor(
    readonly baseUrl: string,
    private readonly apiKey?: string,
  ) {}

  private auth(): Record<string, string> {
    return this.apiKey ? { authorization: `Bearer ${this.apiKey}` } : {};
  }

  async request<T>(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<T> {
    let res: Response;
    try {
      res = await fetch(new URL(path, this.baseUrl), {
        method,
        headers: { ...this.auth(), ...(body !== undefined ? { "content-type": "application/json" } : {}), ...headers },
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      });
    } catch (err) {
      throw new FleetError(
        "bus_unavailable",
        `cannot reach the api at ${this.baseUrl}: ${(err as Error).message} (is the fleet up? ./fleet up)`,
      );
    }
    const text = await res.text();
    const json: unknown = text ? JSON.parse(text) : undefined;
    if (!res.ok) {
      const e = (json as { error?: { code?: string; message?: string } } | undefined)?.error;
      throw new FleetError(
        res.status === 404 ? "not_found" : "bad_input",
        `${res.status} ${e?.code ?? ""}: ${e?.message ?? text}`,
      );
    }
    return json as T;
  }

  /** Server-sent events of a session's log, until the `end` event or the signal. */
  async *follow(sessionId: string, signal?: AbortSignal): AsyncIterable<{ event: string; id?: string; data: unknown }> {
    const res = await fetch(new URL(`/v1/sessions/${encodeURIComponent(sessionId)}/logs`, this.baseUrl), {
      headers: { ...this.auth(), accept: "text/event-stream" },
      ...(signal ? { signal } : {}),
    });
    if (!res.ok || !res.body)
      throw new FleetError("not_found", `cannot follow ${sessionId}: ${res.status} ${await res.text()}`);
    const decoder = new TextDecoder();
    let buffer = "";
    for await (const chunk of res.body) {
      buffer += decoder.decode(chunk as Uint8Array, { stream: true });
      for (let cut = buffer.indexOf("\n\n"); cut >= 0; cut = buffer.indexOf("\n\n")) {
        const block = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        let event = "message";
        let id: string | undefined;
        const data: string[] = [];
        for (const line of block.split("\n")) {
          if (line.startsWith("event: ")) event = line.slice(7);
          else if (line.startsWith("id: ")) id = line.slice(4);
          else if (line.startsWith("data: ")) data.push(line.slice(6));
        }
        if (data.length === 0) continue;
        yield { event, ...(id ? { id } : {}), data: JSON.parse(data.join("\n")) as unknown };
        if (event === "end") return;
      }
    }
  }
}
