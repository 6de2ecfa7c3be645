package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	mdmv1alpha1 "github.com/kubemdm/kubemdm/api/v1alpha1"
	"github.com/kubemdm/kubemdm/internal/enrollment"
)

func newTokenCommand(s *session) *cobra.Command {
	cmd := &cobra.Command{Use: "token", Short: "Create enrollment tokens and show their QR codes"}
	var platform, pngFile string
	var output string
	var oneTime, showQR bool
	var ttl, timeout time.Duration
	create := &cobra.Command{
		Use:   "create NAME --platform PLATFORM",
		Short: "Create an EnrollmentToken and, with --qr, print its QR code",
		Long: `Create an EnrollmentToken: perpetual unless --one-time, valid for --ttl.

Once the controller issued it, --qr prints its QR code (the enrollment
payload: an Android device-owner provisioning code, or the token, host and
CA pin an agent reads) in the terminal and --qr-png writes it as a PNG.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output, "json", "yaml", "name"); err != nil {
				return err
			}
			if output != "" && showQR {
				return errors.New("--qr draws on stdout, where -o prints the token: use one, or --qr-png")
			}
			if platform == "" {
				return errors.New("token create needs --platform (Android, AndroidAOSP, IOS, ChromeOS, Windows or Linux)")
			}
			t := &mdmv1alpha1.EnrollmentToken{ObjectMeta: metav1.ObjectMeta{Namespace: s.namespace, Name: args[0]},
				Spec: mdmv1alpha1.EnrollmentTokenSpec{Platform: mdmv1alpha1.Platform(platform), Perpetual: !oneTime}}
			if ttl > 0 {
				t.Spec.TTL = &metav1.Duration{Duration: ttl}
			}
			if err := s.client.Create(cmd.Context(), t, client.FieldOwner(fieldManager)); err != nil {
				return err
			}
			if output == "" {
				fmt.Fprintf(cmd.OutOrStdout(), "enrollmenttoken.mdm.kubemdm.io/%s created\n", t.Name)
			}
			if showQR || pngFile != "" {
				// With -o, stdout holds the token alone.
				qrOut := cmd.OutOrStdout()
				if output != "" {
					qrOut = cmd.ErrOrStderr()
				}
				if err := showTokenQR(cmd.Context(), s, t.Name, showQR, pngFile, timeout, qrOut); err != nil {
					return err
				}
				// Issued now: print the token with its status.
				if err := s.client.Get(cmd.Context(), client.ObjectKeyFromObject(t), t); err != nil {
					return err
				}
			}
			if output == "" {
				return nil
			}
			return printObject(cmd.OutOrStdout(), s, t, output)
		},
	}
	create.Flags().StringVar(&platform, "platform", "", "The platform of the devices it enrolls.")
	create.Flags().BoolVar(&oneTime, "one-time", false, "The first enrollment spends it; otherwise it enrolls any number until it expires.")
	create.Flags().DurationVar(&ttl, "ttl", 0, "How long it enrolls devices (the controller's default when 0).")
	qr := &cobra.Command{
		Use:   "qr NAME",
		Short: "Print an existing token's QR code, or write it as a PNG",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return showTokenQR(cmd.Context(), s, args[0], pngFile == "", pngFile, timeout, cmd.OutOrStdout())
		},
	}
	for _, c := range []*cobra.Command{create, qr} {
		c.Flags().StringVar(&pngFile, "qr-png", "", "Write the QR code as a PNG to this file.")
		c.Flags().DurationVar(&timeout, "timeout", 30*time.Second, "How long to wait for the controller to issue the token.")
	}
	create.Flags().BoolVar(&showQR, "qr", false, "Print the QR code in the terminal.")
	create.Flags().StringVarP(&output, "output", "o", "", "json or yaml: print the EnrollmentToken; name: its name.")
	cmd.AddCommand(create, qr)
	return cmd
}

// showTokenQR waits for the token's Secret and draws its QR code, or
// writes its PNG.
func showTokenQR(ctx context.Context, s *session, name string, draw bool, pngFile string, timeout time.Duration, out io.Writer) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	secret := &corev1.Secret{}
	for {
		t := &mdmv1alpha1.EnrollmentToken{}
		if err := s.client.Get(ctx, client.ObjectKey{Namespace: s.namespace, Name: name}, t); err != nil {
			return err
		}
		if ref := t.Status.SecretRef; ref != nil {
			err := s.client.Get(ctx, client.ObjectKey{Namespace: s.namespace, Name: ref.Name}, secret)
			if err == nil && len(secret.Data[mdmv1alpha1.TokenSecretQRJSONKey]) > 0 {
				break
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("enrollment token %s was not issued within %s: %w", name, timeout, ctx.Err())
		case <-time.After(250 * time.Millisecond):
		}
	}
	if pngFile != "" {
		if err := os.WriteFile(pngFile, secret.Data[mdmv1alpha1.TokenSecretQRPNGKey], 0o600); err != nil {
			return err
		}
		fmt.Fprintf(out, "QR code written to %s\n", pngFile)
	}
	if !draw {
		return nil
	}
	text, err := enrollment.QRCodeText(secret.Data[mdmv1alpha1.TokenSecretQRJSONKey])
	if err != nil {
		return err
	}
	_, err = fmt.Fprint(out, text)
	return err
}
