// The WeChat mini-program's transport: `wx.request` (which has no fetch, Request or Response).
// Declared here structurally, so the client needs no WeChat type package to compile.

import type { Transport } from "./client.js";

export interface WxRequestOptions {
  url: string;
  method?: string;
  header?: Record<string, string>;
  data?: string;
  dataType?: string;
  responseType?: string;
  timeout?: number;
  success?: (result: { statusCode: number; data: unknown; header: Record<string, string> }) => void;
  fail?: (error: { errMsg: string }) => void;
}
export interface WxLike {
  request(options: WxRequestOptions): unknown;
}

export class NetworkError extends Error {}

/** A `Transport` over `wx.request`: the body as text (dataType "其他" = not parsed by wx). */
export function wxTransport(wx: WxLike, { timeout = 10_000 } = {}): Transport {
  return ({ url, method, headers, body }) =>
    new Promise((resolve, reject) => {
      wx.request({
        url,
        method,
        header: headers,
        data: body,
        dataType: "text",
        responseType: "text",
        timeout,
        success: (result) =>
          resolve({ status: result.statusCode, body: typeof result.data === "string" ? result.data : JSON.stringify(result.data) }),
        fail: (error) => reject(new NetworkError(error.errMsg)),
      });
    });
}
