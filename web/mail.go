package web

import (
	"context"
	"fmt"
	"net/smtp"
	"strings"
	"time"
)

// Mailer sends the console's email: invite links. Nil means email is off
// (the default), and an invite link is only shown to the owner who made
// it, to pass on.
type Mailer interface {
	Send(ctx context.Context, to, subject, body string) error
}

// SMTPMailer sends through an SMTP server (HERALD_SMTP_ADDR), with
// STARTTLS when the server offers it; net/smtp refuses to send a password
// over a connection that is neither TLS nor to localhost.
type SMTPMailer struct {
	Addr               string // host:port
	From               string
	Username, Password string // optional
}

var _ Mailer = (*SMTPMailer)(nil)

// Send sends a plain-text message. Header values are checked so that no
// recipient or subject can smuggle in headers of its own.
func (m *SMTPMailer) Send(_ context.Context, to, subject, body string) error {
	for _, v := range []string{m.From, to, subject} {
		if strings.ContainsAny(v, "\r\n") {
			return fmt.Errorf("mail: a header value contains a line break")
		}
	}
	var auth smtp.Auth
	if m.Username != "" {
		host, _, _ := strings.Cut(m.Addr, ":")
		auth = smtp.PlainAuth("", m.Username, m.Password, host)
	}
	msg := "From: " + m.From + "\r\nTo: " + to + "\r\nSubject: " + subject +
		"\r\nDate: " + time.Now().UTC().Format(time.RFC1123Z) +
		"\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" +
		strings.ReplaceAll(body, "\n", "\r\n")
	if err := smtp.SendMail(m.Addr, auth, m.From, []string{to}, []byte(msg)); err != nil {
		return fmt.Errorf("mail: %w", err)
	}
	return nil
}
