import type { SwaggerTransformObject } from "@fastify/swagger";

/**
 * Operations whose body may be left out. @fastify/swagger marks every declared body as required
 * (fastify itself needs at least `{}` once a body schema exists); these routes turn a missing body
 * into `{}` themselves, so the document must say the body is optional, or clients and schemathesis
 * would be told a bare `POST` is wrong.
 */
const OPTIONAL_BODIES: ReadonlyArray<readonly [path: string, method: "post"]> = [["/v1/sessions/{id}/cancel", "post"]];

export const markOptionalBodies: SwaggerTransformObject = (doc) => {
  if (!("openapiObject" in doc)) return doc.swaggerObject;
  for (const [path, method] of OPTIONAL_BODIES) {
    const body = doc.openapiObject.paths?.[path]?.[method]?.requestBody;
    if (body && !("$ref" in body)) body.required = false;
  }
  return doc.openapiObject;
};
