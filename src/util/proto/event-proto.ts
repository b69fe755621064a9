/**
 * The subset of TensorFlow's published protobuf schema that TensorBoard event files use, verbatim
 * field names and numbers (tensorflow/core/util/event.proto, tensorflow/core/framework/summary.proto).
 * Parsed into the same protobufjs root as SAVED_MODEL_PROTO, whose TensorProto it reuses. Fields
 * left out (images, audio, session logs, run metadata) are skipped by the protobuf decoder.
 */
export const EVENT_PROTO = `
syntax = "proto3";
package tensorflow;

message HistogramProto {
  double min = 1;
  double max = 2;
  double num = 3;
  double sum = 4;
  double sum_squares = 5;
  repeated double bucket_limit = 6 [packed = true];
  repeated double bucket = 7 [packed = true];
}

message SummaryMetadata {
  message PluginData {
    string plugin_name = 1;
    bytes content = 2;
  }
  PluginData plugin_data = 1;
  string display_name = 2;
  string summary_description = 3;
}

message Summary {
  message Value {
    string node_name = 7;
    string tag = 1;
    SummaryMetadata metadata = 9;
    oneof value {
      float simple_value = 2;
      HistogramProto histo = 5;
      TensorProto tensor = 8;
    }
  }
  repeated Value value = 1;
}

message SourceMetadata {
  string writer = 1;
}

message Event {
  double wall_time = 1;
  int64 step = 2;
  oneof what {
    string file_version = 3;
    bytes graph_def = 4;
    Summary summary = 5;
    bytes meta_graph_def = 9;
  }
  SourceMetadata source_metadata = 10;
}
`;
