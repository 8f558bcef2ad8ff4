// A typed client of the chongjun API over any transport: `fetch` in a browser or Node, `wx.request`
// in the WeChat mini-program (which has neither `fetch` nor `Request`). Paths, parameters, bodies
// and answers are the types openapi-typescript generated from the served OpenAPI document
// (`src/vendor/schema.d.ts`, from `openapi.json`; a Python test fails when that document is stale).
//
// In a browser, openapi-fetch over the same types works as well: see `createWebClient`.

import createClient from "openapi-fetch";
import type { components, operations, paths } from "./vendor/schema.js";

export type { components, operations, paths };
export type Schemas = components["schemas"];

type Method = "get" | "post" | "put" | "patch" | "delete";
type Operation<P extends keyof paths, M extends Method> = NonNullable<paths[P][M & keyof paths[P]]>;
/** The paths that have method M. */
export type PathsWith<M extends Method> = {
  [P in keyof paths]: paths[P] extends { [K in M]: infer O } ? ([O] extends [never | undefined] ? never : P) : never;
}[keyof paths];

type JsonOf<C> = C extends { content: { "application/json": infer B } } ? B : never;
type Success<O> = O extends { responses: infer R }
  ? { [S in keyof R]: S extends 200 | 201 ? JsonOf<R[S]> : never }[keyof R]
  : never;
type Body<O> = O extends { requestBody: infer B } ? JsonOf<B> : O extends { requestBody?: infer B } ? JsonOf<B> | undefined : never;
type PathParams<O> = O extends { parameters: { path: infer Q } } ? Q : never;
type QueryParams<O> = O extends { parameters: { query?: infer Q } } ? Q : never;

export type Options<O> = {
  path?: PathParams<O>;
  query?: QueryParams<O>;
  body?: Body<O>;
  headers?: Record<string, string>;
};

/** An RFC 9457 problem answer: `type` is the stable `urn:chongjun:problem:<slug>`. */
export class ProblemError extends Error {
  constructor(
    readonly status: number,
    readonly problem: { type?: string; title?: string; detail?: string; [key: string]: unknown },
  ) {
    super(problem.detail ?? problem.title ?? `HTTP ${status}`);
  }
  get slug(): string {
    return String(this.problem.type ?? "").split(":").pop() ?? "";
  }
}

export interface TransportRequest {
  url: string;
  method: string;
  headers: Record<string, string>;
  body?: string;
}
export interface TransportResponse {
  status: number;
  body: string;
}
export type Transport = (request: TransportRequest) => Promise<TransportResponse>;

/** The transport of browsers and Node 18+. */
export const fetchTransport: Transport = async ({ url, method, headers, body }) => {
  const response = await fetch(url, { method, headers, body });
  return { status: response.status, body: await response.text() };
};

export interface ClientConfig {
  baseUrl: string;
  transport?: Transport;
  /** The bearer token to send, if any (a veteran's access token). */
  token?: () => string | undefined;
}

function expand(template: string, values: Record<string, unknown> | undefined): string {
  return template.replace(/\{([^}:]+)(?::[^}]+)?\}/g, (_, name: string) => encodeURIComponent(String(values?.[name])));
}

function queryString(values: Record<string, unknown> | undefined): string {
  const pairs = Object.entries(values ?? {}).filter(([, v]) => v !== undefined && v !== null);
  return pairs.length ? "?" + pairs.map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(String(v))}`).join("&") : "";
}

export function createChongjunClient(config: ClientConfig) {
  const transport = config.transport ?? fetchTransport;
  const base = config.baseUrl.replace(/\/+$/, "");

  async function call<M extends Method, P extends PathsWith<M>>(
    method: M,
    path: P,
    options: Options<Operation<P, M>> = {},
  ): Promise<Success<Operation<P, M>>> {
    const headers: Record<string, string> = { Accept: "application/json", ...options.headers };
    const token = config.token?.();
    if (token) headers.Authorization = `Bearer ${token}`;
    let body: string | undefined;
    if (options.body !== undefined) {
      headers["Content-Type"] = "application/json";
      body = JSON.stringify(options.body);
    }
    const url = base + expand(String(path), options.path as Record<string, unknown>) + queryString(options.query as Record<string, unknown>);
    const response = await transport({ url, method: method.toUpperCase(), headers, body });
    const data = response.body ? JSON.parse(response.body) : undefined;
    if (response.status >= 400) throw new ProblemError(response.status, data ?? {});
    return data as Success<Operation<P, M>>;
  }

  return {
    call,
    get: <P extends PathsWith<"get">>(path: P, options?: Options<Operation<P, "get">>) => call("get", path, options),
    post: <P extends PathsWith<"post">>(path: P, options?: Options<Operation<P, "post">>) => call("post", path, options),
  };
}

export type ChongjunClient = ReturnType<typeof createChongjunClient>;

/** openapi-fetch over the same types, for web pages (needs `fetch` and `Request`). */
export function createWebClient(baseUrl: string) {
  return createClient<paths>({ baseUrl });
}
