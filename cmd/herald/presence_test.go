package main

import (
	"encoding/json"
	"net/http"
	"slices"
	"testing"

	"github.com/heraldrt/herald/authz"
)

type presenceState struct {
	Presence struct {
		IDs   []string                   `json:"ids"`
		Hash  map[string]json.RawMessage `json:"hash"`
		Count int                        `json:"count"`
	} `json:"presence"`
}

// TestPresence_PerUser checks that presence membership is per user, not
// per connection (§4.4), and how client events travel on a presence
// channel (§4.11).
func TestPresence_PerUser(t *testing.T) {
	t.Parallel()
	app := cred{"1", "key1", "secret1"}
	m := startMain(t, testConfig(appsJSON(appJSON(app, "", ""))))
	const room = "presence-room"

	join := func(userID, info string) (*wsConn, presenceState) {
		t.Helper()
		w := dial(t, m.Addr, app.Key)
		cd := `{"user_id":"` + userID + `","user_info":` + info + `}`
		// One token from authz, the others computed independently.
		token := handChannelToken(app, w.SocketID, room, cd)
		if userID == "u2" {
			token = authz.ChannelToken(app.tenantsKey(), w.SocketID, room, cd)
		}
		var st presenceState
		w.subscribeOK(room, token, cd).decodeData(t, &st)
		return w, st
	}
	checkMembers := func(st presenceState, want ...string) {
		t.Helper()
		ids := slices.Clone(st.Presence.IDs)
		slices.Sort(ids)
		if st.Presence.Count != len(want) || !slices.Equal(ids, want) || len(st.Presence.Hash) != len(want) {
			t.Fatalf("member list ids=%v count=%d hash=%v, want %v", st.Presence.IDs, st.Presence.Count, st.Presence.Hash, want)
		}
	}
	marker := func(w ...*wsConn) [][]frame {
		t.Helper()
		publish(t, m.Addr, app, room, "marker", "", "")
		out := make([][]frame, len(w))
		for i, c := range w {
			out[i] = c.until("marker", room)
		}
		return out
	}
	isMember := func(event string) func(frame) bool {
		return func(f frame) bool { return f.Event == "pusher_internal:"+event && f.Channel == room }
	}
	users := func() []string {
		t.Helper()
		r := signedRequest(t, m.Addr, app, http.MethodGet, "/apps/1/channels/"+room+"/users", nil, nil)
		var body struct {
			Users []struct{ ID string } `json:"users"`
		}
		if r.Status != 200 || json.Unmarshal(r.Body, &body) != nil {
			t.Fatalf("users: %d %s", r.Status, r.Body)
		}
		var ids []string
		for _, u := range body.Users {
			ids = append(ids, u.ID)
		}
		slices.Sort(ids)
		return ids
	}

	u2, st := join("u2", `{"name":"Two"}`)
	checkMembers(st, "u2")

	u1a, st := join("u1", `{"name":"One"}`)
	checkMembers(st, "u1", "u2")
	added := u2.expectEvent("pusher_internal:member_added", room)
	var member struct {
		UserID   string          `json:"user_id"`
		UserInfo json.RawMessage `json:"user_info"`
	}
	added.decodeData(t, &member)
	if member.UserID != "u1" || string(member.UserInfo) != `{"name":"One"}` {
		t.Fatalf("member_added %s: want u1 with its user_info", added)
	}

	// u1's second connection: no second member_added, and the member list
	// still counts two users.
	u1b, st := join("u1", `{"name":"One"}`)
	checkMembers(st, "u1", "u2")
	got := marker(u2, u1a)
	noneOf(t, got[0], "second member_added for u1", isMember("member_added"))
	noneOf(t, got[1], "member_added for u1's own second connection", isMember("member_added"))
	if ids := users(); !slices.Equal(ids, []string{"u1", "u2"}) {
		t.Fatalf("users endpoint = %v, want [u1 u2]", ids)
	}
	info := channelInfo(t, m.Addr, app, room, "user_count,subscription_count")
	if info["user_count"] != float64(2) || info["subscription_count"] != float64(3) {
		t.Fatalf("channel info %v: want user_count 2, subscription_count 3", info)
	}

	// Client events on a presence channel carry the sender's user_id, set
	// by the server whatever the client claims, and are not echoed.
	u2.send(map[string]any{"event": "client-hello", "channel": room, "data": map[string]string{"from": "u2"}, "user_id": "u1"})
	for _, w := range []*wsConn{u1a, u1b} {
		f := w.expectEvent("client-hello", room)
		if f.UserID == nil || *f.UserID != "u2" {
			t.Fatalf("presence client event %s: want user_id u2", f)
		}
		if f.data() != `{"from":"u2"}` {
			t.Fatalf("client event data %q", f.data())
		}
	}
	// u1's event reaches u1's other connection and u2, not the sender.
	u1a.clientEvent(room, "client-from-u1", "hi")
	for _, w := range []*wsConn{u1b, u2} {
		if f := w.expectEvent("client-from-u1", room); f.UserID == nil || *f.UserID != "u1" || f.data() != "hi" {
			t.Fatalf("got %s: want user_id u1 and data hi", f)
		}
	}
	got = marker(u2, u1a)
	noneOf(t, got[0], "client event echoed to its sender", isEvent("client-hello", room))
	noneOf(t, got[1], "client event echoed to its sender", isEvent("client-from-u1", room))

	// One of u1's connections leaves: u1 is still present.
	u1a.close()
	waitFor(t, "subscription_count 2", func() bool {
		return channelInfo(t, m.Addr, app, room, "subscription_count")["subscription_count"] == float64(2)
	})
	got = marker(u2, u1b)
	noneOf(t, got[0], "member_removed while u1 has a connection left", isMember("member_removed"))
	if ids := users(); !slices.Equal(ids, []string{"u1", "u2"}) {
		t.Fatalf("users endpoint = %v, want [u1 u2]", ids)
	}

	// The last one leaves: member_removed with just the user id.
	u1b.close()
	removed := u2.expectEvent("pusher_internal:member_removed", room)
	var gone map[string]any
	removed.decodeData(t, &gone)
	if len(gone) != 1 || gone["user_id"] != "u1" {
		t.Fatalf(`member_removed %s: want data {"user_id":"u1"}`, removed)
	}
	got = marker(u2)
	noneOf(t, got[0], "second member_removed", isMember("member_removed"))
	if ids := users(); !slices.Equal(ids, []string{"u2"}) {
		t.Fatalf("users endpoint = %v, want [u2]", ids)
	}

	// A newcomer sees only u2.
	u3, st := join("u3", `null`)
	checkMembers(st, "u2", "u3")
	if string(st.Presence.Hash["u3"]) != "null" {
		t.Fatalf("user_info of u3 = %s, want null", st.Presence.Hash["u3"])
	}
	u2.expectEvent("pusher_internal:member_added", room)
	u3.ping()
}

// TestPresence_SignedInMember joins a presence channel without
// channel_data, as the signed-in user (§4.4).
func TestPresence_SignedInMember(t *testing.T) {
	t.Parallel()
	app := cred{"1", "key1", "secret1"}
	m := startMain(t, testConfig(appsJSON(appJSON(app, "", ""))))
	w := dial(t, m.Addr, app.Key)
	// Without sign-in it is refused.
	w.subscribeRefused("presence-si", handChannelToken(app, w.SocketID, "presence-si", ""), "")
	ud := `{"id":"sam","user_info":{"role":"admin"}}`
	w.signin(app.Key+":"+hmacHex(app.Secret, w.SocketID+"::user::"+ud), ud)
	var st presenceState
	w.subscribeOK("presence-si", handChannelToken(app, w.SocketID, "presence-si", ""), "").decodeData(t, &st)
	if st.Presence.Count != 1 || len(st.Presence.IDs) != 1 || st.Presence.IDs[0] != "sam" || string(st.Presence.Hash["sam"]) != `{"role":"admin"}` {
		t.Fatalf("presence state %+v: want sam with its user_info", st.Presence)
	}
}
