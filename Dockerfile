# Builds the single herald binary into a minimal image.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -o /herald ./cmd/herald

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /herald /herald
EXPOSE 6001
# `docker run IMAGE` serves; `docker run IMAGE migrate` (or any other command) runs that.
ENTRYPOINT ["/herald"]
CMD ["serve"]
