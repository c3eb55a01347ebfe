import { connect } from "node:net";
import { describe, expect, it } from "vitest";
import { useApi } from "./support/api-fixture.js";
import { jsonOf, rawRequest, type RawAnswer } from "./support/http.js";

/** Bytes written straight to the socket, for requests no HTTP client would send; the answer's status and body. */
function rawSocket(base: string, bytes: string): Promise<RawAnswer> {
  const url = new URL(base);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(url.port), url.hostname, () => socket.end(bytes));
    let data = "";
    socket.setEncoding("utf8");
    socket.on("data", (c: string) => (data += c));
    socket.on("error", reject);
    socket.on("close", () => {
      const [head = "", text = ""] = data.split("\r\n\r\n");
      resolve({ status: Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1] ?? 0), headers: {}, text });
    });
  });
}

describe("every error in the documented shape, framework refusals included", () => {
  const api = useApi({ prefix: "apierr", api: { bodyLimit: 4_096 } });

  const json = { "content-type": "application/json" };
  const cases: Array<[string, number, string, () => Promise<RawAnswer>]> = [
    [
      "a path parameter over 200 characters",
      414,
      "uri_too_long",
      () => rawRequest(api.base, "GET", `/v1/sessions/${"a".repeat(201)}`, { headers: api.auth }),
    ],
    [
      "a URL over 8 KiB",
      414,
      "uri_too_long",
      () => rawRequest(api.base, "GET", `/v1/sessions?projectId=p1&cursor=${"c".repeat(9_000)}`, { headers: api.auth }),
    ],
    [
      "a URL over 8 KiB without a key",
      414,
      "uri_too_long",
      () => rawRequest(api.base, "GET", `/v1/sessions?projectId=p1&cursor=${"c".repeat(9_000)}`),
    ],
    [
      "headers over 16 KiB",
      431,
      "headers_too_large",
      () => rawSocket(api.base, `GET /healthz HTTP/1.1\r\nhost: x\r\nx-big: ${"h".repeat(20_000)}\r\n\r\n`),
    ],
    [
      "a request line over 16 KiB",
      431,
      "headers_too_large",
      () => rawSocket(api.base, `GET /v1/sessions?projectId=${"p".repeat(20_000)} HTTP/1.1\r\nhost: x\r\n\r\n`),
    ],
    ["a request that is not HTTP", 400, "bad_request", () => rawSocket(api.base, "HELLO THERE\r\n\r\n")],
    [
      "a malformed percent escape",
      400,
      "bad_request",
      () => rawRequest(api.base, "GET", "/v1/sessions/%zz", { headers: api.auth }),
    ],
    [
      "a body over the limit",
      413,
      "payload_too_large",
      () =>
        rawRequest(api.base, "POST", "/v1/sessions", {
          headers: { ...api.auth, ...json },
          body: JSON.stringify({ projectId: "p1", prompt: "x".repeat(5_000) }),
        }),
    ],
    [
      "a body that is not JSON",
      400,
      "bad_request",
      () => rawRequest(api.base, "POST", "/v1/sessions", { headers: { ...api.auth, ...json }, body: "{not json" }),
    ],
    [
      "an empty JSON body",
      400,
      "bad_request",
      () => rawRequest(api.base, "POST", "/v1/sessions", { headers: { ...api.auth, ...json }, body: "" }),
    ],
    [
      "an unsupported content type",
      415,
      "unsupported_media_type",
      () =>
        rawRequest(api.base, "POST", "/v1/sessions", {
          headers: { ...api.auth, "content-type": "application/xml" },
          body: "<a/>",
        }),
    ],
    [
      "a body that breaks the schema",
      400,
      "bad_input",
      () => rawRequest(api.base, "POST", "/v1/sessions", { headers: { ...api.auth, ...json }, body: "{}" }),
    ],
    ["no key", 401, "unauthorized", () => rawRequest(api.base, "GET", "/v1/sessions/s1")],
    ["an unknown route", 404, "not_found", () => rawRequest(api.base, "GET", "/nowhere")],
    ["a method the path does not have", 405, "method_not_allowed", () => rawRequest(api.base, "DELETE", "/healthz")],
  ];

  it.each(cases)("answers %s with %i and the error body", async (_, status, code, ask) => {
    const r = await ask();
    expect(r.status).toBe(status);
    const body = jsonOf(r.text) as { error?: Record<string, unknown> } | undefined;
    expect(body).toEqual({ error: expect.objectContaining({ code, message: expect.any(String) }) });
    // Nothing but code, message and (for schema errors) issues: no framework fields, no echoed input.
    expect(
      Object.keys(body?.error ?? {})
        .filter((k) => k !== "issues")
        .sort(),
    ).toEqual(["code", "message"]);
    expect(Object.keys(body ?? {})).toEqual(["error"]);
    expect(r.text.length).toBeLessThan(2_000 + (code === "bad_input" ? 10_000 : 0));
  });

  it("takes ids up to their 128 characters (they are not too long for the router)", async () => {
    const r = await rawRequest(api.base, "GET", `/v1/sessions/${"a".repeat(128)}`, { headers: api.auth });
    expect(r.status).toBe(404);
    expect((await rawRequest(api.base, "GET", `/v1/sessions/${"a".repeat(129)}`, { headers: api.auth })).status).toBe(
      400,
    );
  });
});
