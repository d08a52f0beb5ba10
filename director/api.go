package director

import (
	"context"
	"net"
	"net/http"

	"github.com/lvskit/lvskit/director/statusapi"
)

// Serve serves the metrics at /metrics on ln until ctx is done (see
// statusapi.Serve).
func (m *Metrics) Serve(ctx context.Context, ln net.Listener) error {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", m.Handler())
	return statusapi.Serve(ctx, ln, mux, m.log)
}
