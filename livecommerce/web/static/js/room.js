// A live room's socket (docs/protocol.md): reconnects with backoff and resumes from the
// last event seen, so a network drop loses nothing the room still remembers.

const FINAL = new Set([4403, 4404, 4400]); // banned, no such stream, bad query: do not retry
// A server that drains says when to come back ("... (retry_after_ms=N)", docs/protocol.md).
const RETRY_HINT = /retry_after_ms=(\d+)/;

/** When to reconnect after a close: the server's hint, else exponential backoff; jittered. */
export function reconnectDelay(reason, attempt) {
  const hint = RETRY_HINT.exec(reason || "");
  if (hint) return Number(hint[1]) + Math.random() * 250;
  return Math.min(15000, 500 * 2 ** attempt) * (0.5 + Math.random() / 2);
}

export class RoomSocket {
  /**
   * @param {object} options
   * @param {number} options.streamId
   * @param {() => Promise<string>} options.token  a fresh token for each (re)connection
   * @param {() => {locale: string, currency: string}} options.prefs
   * @param {(frame: object) => void} options.onFrame  every frame, in order
   * @param {(state: string) => void} [options.onState]  "connecting" | "live" | "offline" | "closed"
   */
  constructor({ streamId, token, prefs, onFrame, onState = () => {} }) {
    Object.assign(this, { streamId, token, prefs, onFrame, onState });
    this.lastSeq = null;
    this.epoch = null; // of the room's history, which lastSeq counts in
    this.attempt = 0;
    this.stopped = false;
    this.ws = null;
    this.pinger = null;
  }

  async connect() {
    if (this.stopped) return;
    this.onState("connecting");
    const { locale, currency } = this.prefs();
    const query = new URLSearchParams({ token: await this.token(), locale, currency });
    if (this.lastSeq !== null) query.set("last_seq", String(this.lastSeq));
    if (this.lastSeq !== null && this.epoch !== null) query.set("epoch", this.epoch);
    const scheme = window.location.protocol === "https:" ? "wss" : "ws";
    const ws = new WebSocket(`${scheme}://${window.location.host}/ws/streams/${this.streamId}?${query}`);
    this.ws = ws;
    ws.onmessage = (message) => {
      let frame;
      try {
        frame = JSON.parse(message.data);
      } catch {
        return;
      }
      if (frame.type === "welcome") {
        this.attempt = 0;
        this.refreshedToken = false;
        this.onState("live");
        // Resumed: the replay that follows moves lastSeq on. Otherwise the welcome is the
        // whole state, up to its last_seq. A welcome can also come mid-connection when the
        // room's history was reset (a new epoch): it is then the whole state as well.
        if (frame.data.resumed !== true) this.lastSeq = frame.data.last_seq;
        this.epoch = frame.data.epoch ?? null;
      } else if (typeof frame.seq === "number") {
        if (this.lastSeq !== null && frame.seq <= this.lastSeq) return; // already applied
        this.lastSeq = frame.seq;
      }
      this.onFrame(frame);
    };
    ws.onclose = (event) => {
      clearInterval(this.pinger);
      if (this.ws !== ws) return; // replaced by a newer socket (language switch)
      if (event.code === 4401 && !this.refreshedToken) {
        // The token expired: a guest's is replaced by a fresh one, once; a user's session
        // is over (the page offers to sign in again).
        this.refreshedToken = true;
        window.sessionStorage.removeItem("lc.guest");
        setTimeout(() => this.connect(), 200);
        return;
      }
      if (this.stopped || FINAL.has(event.code) || event.code === 4401) {
        this.onState("closed");
        this.onFrame({ type: "closed", data: { code: event.code } });
        return;
      }
      this.onState("offline");
      const delay = reconnectDelay(event.reason, this.attempt);
      this.attempt += 1;
      setTimeout(() => this.connect(), delay);
    };
    this.pinger = setInterval(() => this.send({ type: "ping" }), 25000);
  }

  send(frame) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) {
      this.ws.send(JSON.stringify(frame));
      return true;
    }
    return false;
  }

  /** Reconnect now (language or currency changed): frames come rendered anew. */
  reconnect() {
    const old = this.ws;
    this.ws = null;
    if (old) old.close(1000);
    this.lastSeq = null; // a fresh welcome carries the whole state in the new language
    this.connect();
  }

  /** Drop the connection as a network failure would (the page offers it for testing). */
  drop() {
    if (this.ws) this.ws.close(4000, "dropped by the client");
  }

  close() {
    this.stopped = true;
    if (this.ws) this.ws.close(1000);
  }
}
