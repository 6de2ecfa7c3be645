package scale

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
)

// managerHandshakes reads the manager's TLS handshakes on its agent
// listener since it started, by result.
func (h *Harness) managerHandshakes(ctx context.Context) (map[string]float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+h.metricsAddr+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("reading the manager's metrics: %w", err)
	}
	defer func() { _ = resp.Body.Close() }()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("reading the manager's metrics: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("reading the manager's metrics: %s", resp.Status)
	}
	return parseHandshakes(raw)
}

// parseHandshakes reads kubemdm_gateway_tls_handshakes_total by result.
func parseHandshakes(raw []byte) (map[string]float64, error) {
	out := map[string]float64{}
	sc := bufio.NewScanner(bytes.NewReader(raw))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), `kubemdm_gateway_tls_handshakes_total{result="`)
		if !ok {
			continue
		}
		result, value, ok := strings.Cut(rest, `"} `)
		if !ok {
			return nil, fmt.Errorf("unexpected handshake series %q", sc.Text())
		}
		n, err := strconv.ParseFloat(value, 64)
		if err != nil {
			return nil, fmt.Errorf("handshake series %q: %w", sc.Text(), err)
		}
		out[result] = n
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("the manager's metrics hold no kubemdm_gateway_tls_handshakes_total")
	}
	return out, nil
}

// resumedShare is the share of the handshakes handed to the gateway's
// server that resumed a session.
func resumedShare(handshakes map[string]float64) float64 {
	served := handshakes["ok"] + handshakes["resumed"]
	if served == 0 {
		return 0
	}
	return handshakes["resumed"] / served
}
