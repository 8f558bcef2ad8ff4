// The veteran flow of the mini-program, typed end to end: log in with a 随申码, list the benefits
// matched without applying (免申即享), get a 崇军码 to show at the gate.

import { createChongjunClient, type Schemas, type Transport } from "./client.js";

export interface VeteranFlowResult {
  person: Schemas["SuishenSession"]["person"];
  eligible: Array<{ code: string; name_zh: string; remaining: number | null | undefined }>;
  code: Schemas["IssuedCode"];
}

export async function veteranFlow(baseUrl: string, suishenCode: string, transport?: Transport): Promise<VeteranFlowResult> {
  let accessToken: string | undefined;
  const api = createChongjunClient({ baseUrl, transport, token: () => accessToken });

  const session = await api.post("/v1/auth/suishen", { body: { code: suishenCode } });
  accessToken = session.access_token;

  const mine = await api.get("/v1/me/benefits");
  const eligible = mine.items
    .filter((item) => item.eligible)
    .map((item) => ({ code: item.code, name_zh: item.name_zh, remaining: item.remaining }));

  const code = await api.post("/v1/me/codes", { body: {} });
  // Refresh the shown code every `refresh_after` seconds; it expires at `expires_at`.
  return { person: session.person, eligible, code };
}
