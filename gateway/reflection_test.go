package gateway_test

import (
	"context"
	"crypto/tls"
	"net/http"

	"connectrpc.com/connect"
	"connectrpc.com/grpcreflect"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/kubemdm/kubemdm/api/agent/v1/agentv1connect"
	"github.com/kubemdm/kubemdm/internal/pki"
)

var _ = Describe("Reflection", func() {
	It("lists and describes the agent service over gRPC, as grpcurl and buf curl ask, without a client certificate", func() {
		tlsCfg := &tls.Config{RootCAs: pki.PoolFromPEM(env.CABundle), ServerName: "127.0.0.1"}
		hc := &http.Client{Transport: &http.Transport{TLSClientConfig: tlsCfg, ForceAttemptHTTP2: true}}
		stream := grpcreflect.NewClient(hc, "https://"+env.GatewayAddr, connect.WithGRPC()).NewStream(context.Background())
		defer func() { _, _ = stream.Close() }()

		names, err := stream.ListServices()
		Expect(err).NotTo(HaveOccurred())
		Expect(names).To(ContainElement(BeEquivalentTo(agentv1connect.AgentServiceName)))

		files, err := stream.FileContainingSymbol(agentv1connect.AgentServiceName)
		Expect(err).NotTo(HaveOccurred())
		Expect(files).NotTo(BeEmpty())
		var methods []string
		for _, f := range files {
			for _, svc := range f.GetService() {
				for _, m := range svc.GetMethod() {
					methods = append(methods, m.GetName())
				}
			}
		}
		Expect(methods).To(ContainElements("Enroll", "Subscribe", "Poll", "ReportStatus", "CompleteCommand", "RenewCertificate"))
	})
})
