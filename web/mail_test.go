package web

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// fakeSMTP accepts one SMTP session on loopback and hands over the message
// it was given.
func fakeSMTP(t *testing.T) (string, <-chan string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	got := make(chan string, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
		r := bufio.NewReader(conn)
		fmt.Fprint(conn, "220 fake ESMTP\r\n")
		var data strings.Builder
		inData := false
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			if inData {
				if line == ".\r\n" {
					inData = false
					got <- data.String()
					fmt.Fprint(conn, "250 queued\r\n")
				} else {
					data.WriteString(line)
				}
				continue
			}
			switch cmd := strings.ToUpper(strings.TrimSpace(line)); {
			case cmd == "DATA":
				inData = true
				fmt.Fprint(conn, "354 go on\r\n")
			case cmd == "QUIT":
				fmt.Fprint(conn, "221 bye\r\n")
				return
			default:
				fmt.Fprint(conn, "250 ok\r\n")
			}
		}
	}()
	return ln.Addr().String(), got
}

func TestSMTPMailer(t *testing.T) {
	addr, got := fakeSMTP(t)
	m := &SMTPMailer{Addr: addr, From: "herald@example.com"}
	if err := m.Send(t.Context(), "ann@example.com", "Hello", "line one\nline two\n"); err != nil {
		t.Fatal(err)
	}
	msg := <-got
	for _, want := range []string{"From: herald@example.com\r\n", "To: ann@example.com\r\n", "Subject: Hello\r\n", "line one\r\nline two\r\n"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message lacks %q:\n%s", want, msg)
		}
	}
	if err := m.Send(t.Context(), "ann@example.com\r\nBcc: eve@example.com", "Hi", "x"); err == nil {
		t.Error("a recipient with a header of its own was sent")
	}
}

// With a mailer, an invite link is also emailed to the invitee.
func TestInviteIsEmailed(t *testing.T) {
	f := newConsole(t)
	addr, got := fakeSMTP(t)
	f.con.Mailer = &SMTPMailer{Addr: addr, From: "herald@example.com"}
	owner := f.browser(t).signIn(ownerEmail)
	resp, page := owner.post("/console/tenants/acme/members/invite", url.Values{"email": {"new@acme.test"}, "role": {"viewer"}})
	if resp.StatusCode != http.StatusCreated || !strings.Contains(page, "also emailed to new@acme.test") {
		t.Fatalf("invite: %d\n%s", resp.StatusCode, page)
	}
	select {
	case msg := <-got:
		if !strings.Contains(msg, "To: new@acme.test") || !strings.Contains(msg, "/console/join/") {
			t.Errorf("invite email:\n%s", msg)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no email")
	}
}
