package api

import (
	"errors"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/heraldrt/herald/authz"
)

// Error is an API error: an HTTP status and a message that is safe to show
// the caller.
type Error struct {
	Status  int
	Message string
}

func (e *Error) Error() string { return e.Message }

func badRequest(msg string) error { return &Error{fiber.StatusBadRequest, msg} }

// ErrorHandler writes every error as {"error": "..."} with its status.
// Errors that are not ours (a panic, a broken backend) are logged by the
// caller and answered with a fixed 500 text, never their detail.
func ErrorHandler(c *fiber.Ctx, err error) error {
	status, msg := fiber.StatusInternalServerError, "internal server error"
	var apiErr *Error
	var fiberErr *fiber.Error
	var restErr *authz.RESTError
	var limitErr *authz.LimitError
	switch {
	case errors.As(err, &limitErr):
		limitErr.Verdict.WriteHeaders(time.Now(), c.Response().Header.SetBytesV)
		c.Set(fiber.HeaderCacheControl, "no-store")
		return c.Status(fiber.StatusTooManyRequests).JSON(fiber.Map{"error": limitErr.Message, "limit": limitErr.Limit})
	case errors.As(err, &apiErr):
		status, msg = apiErr.Status, apiErr.Message
	case errors.As(err, &restErr):
		status, msg = fiber.StatusUnauthorized, restErr.Error()
	case errors.As(err, &fiberErr):
		status, msg = fiberErr.Code, fiberErr.Message
		if status == fiber.StatusRequestEntityTooLarge {
			msg = "request body is too large"
		}
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.Status(status).JSON(fiber.Map{"error": msg})
}
