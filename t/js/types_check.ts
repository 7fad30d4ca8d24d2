// Compiled (not run) by t/integration/test_js_client.py with tsc --strict:
// the published types must accept the README's usage and refuse misuse.
import { RealtimeClient, tokenExpiry, type State, type MessageMeta } from "../../clients/js/realtime.js";

const rt = new RealtimeClient("/ws/notifications/", {
  token: async () => "header.payload.signature",
  transports: ["websocket", "eventsource"],
  backoff: { min: 250, max: 10000 },
  refreshBefore: 20,
});
rt.on("notification", (data: any, meta: MessageMeta) => console.log(data, meta.group, meta.id));
rt.on("recovery", (notice) => console.log(notice.group, notice.recovered));
rt.on("state", (state: State, detail) => console.log(state, detail.code, detail.delay));
rt.on("close", (info) => console.log(info.code, info.wasOpen, info.transport));
const sent: boolean = rt.send({ type: "chat_message", message: "hi" });
const exp: number | null = tokenExpiry("a.b.c");
const ids: Record<string, string> = rt.lastIds;
console.log(sent, exp, ids, rt.dropped, rt.transport);
rt.close();

// misuse the types must refuse
// @ts-expect-error: the state is read-only
rt.state = "open";
// @ts-expect-error: not a transport
new RealtimeClient("/ws/", { transports: ["longpolling"] });
