package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// Connect's own codecs explain a body they cannot decode with the Go type
// they decoded into ("unmarshal into *agentv1.PollRequest"), which means
// nothing to someone writing an agent from the .proto. These codecs decode
// the same way and name the protocol's message instead.

// protoCodec decodes binary protobuf (application/proto, application/grpc).
type protoCodec struct{}

func (protoCodec) Name() string { return "proto" }

func (protoCodec) Marshal(m any) ([]byte, error) {
	msg, err := asMessage(m)
	if err != nil {
		return nil, err
	}
	return proto.Marshal(msg)
}

func (protoCodec) Unmarshal(data []byte, m any) error {
	msg, err := asMessage(m)
	if err != nil {
		return err
	}
	return explainDecode(msg, "binary protobuf", proto.Unmarshal(data, msg))
}

// jsonCodec decodes the protobuf JSON mapping. Unknown fields are ignored, so
// an agent built from a newer .proto still talks to an older gateway.
type jsonCodec struct{ name string }

func (c jsonCodec) Name() string { return c.name }

// Marshal writes compact JSON. protojson on its own adds spaces at random,
// on purpose, so that nobody relies on its output byte for byte; people
// reading answers with curl and tests comparing them do.
func (jsonCodec) Marshal(m any) ([]byte, error) {
	msg, err := asMessage(m)
	if err != nil {
		return nil, err
	}
	out, err := protojson.Marshal(msg)
	if err != nil {
		return nil, err
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, out); err != nil {
		return nil, err
	}
	return compact.Bytes(), nil
}

func (jsonCodec) Unmarshal(data []byte, m any) error {
	msg, err := asMessage(m)
	if err != nil {
		return err
	}
	if len(data) == 0 {
		return explainDecode(msg, "JSON", errors.New("the body is empty; send {} for a message with no fields"))
	}
	return explainDecode(msg, "JSON", protojson.UnmarshalOptions{DiscardUnknown: true}.Unmarshal(data, msg))
}

func asMessage(m any) (proto.Message, error) {
	msg, ok := m.(proto.Message)
	if !ok {
		return nil, fmt.Errorf("%T is not a protobuf message", m)
	}
	return msg, nil
}

func explainDecode(msg proto.Message, format string, err error) error {
	if err == nil {
		return nil
	}
	// protobuf-go prefixes its errors with "proto:" and, in a detail it
	// documents as unstable, sometimes a non-breaking space.
	detail := strings.TrimSpace(strings.NewReplacer("proto:\u00a0", "", "proto: ", "").Replace(err.Error()))
	return fmt.Errorf("not a valid %s in %s: %s", msg.ProtoReflect().Descriptor().FullName(), format, detail)
}

// codecs replace Connect's defaults under the same names.
func codecs() []connect.HandlerOption {
	return []connect.HandlerOption{
		connect.WithCodec(protoCodec{}),
		connect.WithCodec(jsonCodec{name: "json"}),
		connect.WithCodec(jsonCodec{name: "json; charset=utf-8"}),
	}
}
