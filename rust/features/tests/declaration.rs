//! A declaration checked against its model: every mismatch is a load error that says what to
//! change.

mod common;

use common::*;
use ferroserve_features::*;
use ferroserve_tensor::DataType;

/// user_id + dense(32) + view user(31) into x.
fn declaration(width_of_view: usize) -> Declaration {
    Declaration {
        request_inputs: vec![
            input("user_id", DataType::Int64, 1),
            input("dense", DataType::Fp32, 32),
        ],
        views: vec![fp32_view(
            "user",
            &["user_id"],
            width_of_view,
            0.0,
            None,
            MissingPolicy::UseDefault,
        )],
        assembly: vec![assemble("x", vec![req("dense"), view("user")])],
    }
}

fn model(width: i64) -> ModelSignature {
    ModelSignature {
        inputs: vec![fp32_model_input("x", width)],
    }
}

fn error(declaration: &Declaration, model: &ModelSignature) -> String {
    JoinPlan::compile(declaration, model)
        .expect_err("the declaration must not fit")
        .to_string()
}

#[test]
fn a_fitting_declaration_compiles() {
    let plan = JoinPlan::compile(&declaration(32), &model(64)).expect("fits");
    assert_eq!(plan.model_inputs()[0].row_bytes(), 64 * 4);
    assert_eq!(
        plan.view_layout("user").expect("declared").row_bytes(),
        32 * 4
    );
    assert_eq!(plan.view_position("user"), Some(0));
    assert_eq!(plan.request_inputs().len(), 2);
}

#[test]
fn width_mismatch_lists_the_segments() {
    assert_eq!(
        error(&declaration(31), &model(64)),
        "model input 'x' has 64 columns but the segments give 63: request input 'dense' (32) + view 'user' (31)"
    );
}

#[test]
fn datatype_mismatch_names_the_feature() {
    let mut declaration = declaration(32);
    declaration.views[0].features[3].datatype = DataType::Fp64;
    declaration.views[0].features[3].default = FeatureValue::Fp64(0.0);
    assert_eq!(
        error(&declaration, &model(64)),
        "model input 'x' is FP32 but its segment feature 'user.f3' is FP64: declare the segment as FP32"
    );
}

#[test]
fn default_of_another_datatype_is_refused() {
    let mut declaration = declaration(32);
    declaration.views[0].features[0].default = FeatureValue::Int64(0);
    assert!(
        error(&declaration, &model(64))
            .contains("feature 'user.f0' is FP32 but its default is an INT64 value")
    );
}

#[test]
fn key_input_must_be_int64_or_bytes_with_one_column() {
    let mut declaration = declaration(32);
    declaration.request_inputs[0].datatype = DataType::Fp32;
    assert_eq!(
        error(&declaration, &model(64)),
        "request input 'user_id' is part of the key of view 'user' but is FP32 with 1 column(s): an entity key part is INT64 or BYTES with 1 column"
    );
}

#[test]
fn unknown_names_list_what_exists() {
    let mut unknown_key = declaration(32);
    unknown_key.views[0].key = vec!["uid".into()];
    assert_eq!(
        error(&unknown_key, &model(64)),
        "the key of feature view 'user' names request input 'uid', which is not declared (declared: user_id, dense)"
    );
    let mut unknown_view = declaration(32);
    unknown_view.assembly[0].segments[1] = view("users");
    assert_eq!(
        error(&unknown_view, &model(64)),
        "model input 'x' names feature view 'users', which is not declared (declared: user)"
    );
    let mut unknown_input = declaration(32);
    unknown_input.assembly[0].model_input = "input".into();
    assert_eq!(
        error(&unknown_input, &model(64)),
        "the assembly names model input 'input', but the model's inputs are: x"
    );
}

#[test]
fn every_model_input_is_assembled_or_passed_through() {
    let mut two_inputs = model(64);
    two_inputs.inputs.push(fp32_model_input("extra", 4));
    assert_eq!(
        error(&declaration(32), &two_inputs),
        "model input 'extra' is not assembled: add an assembly entry for it, or a request input named 'extra' to pass through"
    );
    let mut with_extra = declaration(32);
    with_extra
        .request_inputs
        .push(input("extra", DataType::Fp32, 4));
    let plan = JoinPlan::compile(&with_extra, &two_inputs).expect("extra passes through");
    assert_eq!(plan.model_inputs()[1].row_bytes(), 16);
}

#[test]
fn views_land_exactly_once_and_inputs_are_used() {
    let mut unused_view = declaration(32);
    unused_view.views.push(fp32_view(
        "card",
        &["user_id"],
        1,
        0.0,
        None,
        MissingPolicy::UseDefault,
    ));
    assert!(error(&unused_view, &model(64)).starts_with("feature view 'card' lands in 0 segments"));
    let mut unused_input = declaration(32);
    unused_input
        .request_inputs
        .push(input("spare", DataType::Fp32, 1));
    assert!(error(&unused_input, &model(64)).starts_with("request input 'spare' is neither"));
}

#[test]
fn shapes_that_cannot_be_concatenated_are_refused() {
    let variable = ModelSignature {
        inputs: vec![fp32_model_input("x", -1)],
    };
    assert!(error(&declaration(32), &variable).contains("a dimension is variable"));
    let three_d = ModelSignature {
        inputs: vec![ModelInput {
            name: "x".into(),
            datatype: DataType::Fp32,
            dims: vec![8, 8],
        }],
    };
    assert!(error(&declaration(32), &three_d).contains("give the model input dims [width]"));
}

#[test]
fn duplicates_and_empty_views_are_refused() {
    let mut twice = declaration(32);
    twice.views[0].features[1].name = "f0".into();
    assert_eq!(
        error(&twice, &model(64)),
        "feature 'user.f0' is declared twice: give each a distinct name"
    );
    let mut empty = declaration(0);
    empty.views[0].features.clear();
    assert!(error(&empty, &model(32)).contains("has no features"));
    let mut zero_age = declaration(32);
    zero_age.views[0].max_age = Some(std::time::Duration::ZERO);
    assert!(error(&zero_age, &model(64)).contains("max age of 0"));
}

#[test]
fn request_inputs_have_columns() {
    let mut declaration = declaration(32);
    declaration
        .request_inputs
        .push(input("empty", DataType::Fp32, 0));
    declaration.assembly[0].segments.push(req("empty"));
    assert_eq!(
        error(&declaration, &model(64)),
        "request input 'empty' has 0 columns: give it at least 1"
    );
}
