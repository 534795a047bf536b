//! `JoinPlan`: a declaration checked against its model's signature and compiled into what the
//! gather walks (each model input's segments with their byte offsets in a row, each view's
//! layout and key inputs), plus the plan's counters. Compiled once when a model version loads;
//! every error says what to change in the declaration.

use std::sync::Arc;

use ferroserve_tensor::DataType;

use crate::DeclarationError;
use crate::declaration::{Declaration, ModelSignature, RequestInput, Segment};
use crate::layout::{ViewLayout, names};
use crate::stats::JoinStats;

/// Where a segment's bytes come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SegmentSource {
    /// The request input at this position.
    Request(usize),
    /// The view at this position.
    View(usize),
}

/// A run of bytes in each row of a model input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SegmentPlan {
    /// Where its bytes come from.
    pub(crate) source: SegmentSource,
    /// Its first byte in the model input's row.
    pub(crate) offset: usize,
    /// Its bytes per row.
    pub(crate) bytes: usize,
}

/// One model input as the join writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelInputLayout {
    /// The model input's name.
    name: String,
    /// Its datatype.
    datatype: DataType,
    /// Its dims per row (without the batch dim).
    dims: Vec<i64>,
    /// Bytes per row.
    row_bytes: usize,
    /// Its segments, in row order.
    segments: Vec<SegmentPlan>,
}

impl ModelInputLayout {
    /// The model input's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its datatype.
    pub fn datatype(&self) -> DataType {
        self.datatype
    }

    /// Its dims per row (without the batch dim).
    pub fn dims(&self) -> &[i64] {
        &self.dims
    }

    /// Bytes per row.
    pub fn row_bytes(&self) -> usize {
        self.row_bytes
    }

    /// Its segments, in row order.
    pub(crate) fn segments(&self) -> &[SegmentPlan] {
        &self.segments
    }
}

/// A declaration compiled against a model; see the module doc.
#[derive(Debug)]
pub struct JoinPlan {
    /// What clients send, in the order the gather takes the buffers.
    request_inputs: Vec<RequestInput>,
    /// Bytes per row of each request input; `None` for BYTES (key parts).
    request_row_bytes: Vec<Option<usize>>,
    /// Each view's layout, in declaration order.
    views: Vec<ViewLayout>,
    /// Each view's key parts as positions in `request_inputs`.
    view_key_inputs: Vec<Vec<usize>>,
    /// The model's inputs, in signature order.
    model_inputs: Vec<ModelInputLayout>,
    /// Lookup counters, shared with whoever exports them.
    stats: Arc<JoinStats>,
}

impl JoinPlan {
    /// Checks `declaration` against `model` and compiles it.
    pub fn compile(
        declaration: &Declaration,
        model: &ModelSignature,
    ) -> Result<JoinPlan, DeclarationError> {
        let request_inputs = &declaration.request_inputs;
        check_unique(
            "request input",
            request_inputs.iter().map(|i| i.name.as_str()),
        )?;
        check_unique(
            "feature view",
            declaration.views.iter().map(|v| v.name.as_str()),
        )?;
        check_unique(
            "assembly entry for model input",
            declaration.assembly.iter().map(|a| a.model_input.as_str()),
        )?;
        if let Some(input) = request_inputs.iter().find(|input| input.columns == 0) {
            return Err(DeclarationError::NoColumns {
                input: input.name.clone(),
            });
        }
        let views = declaration
            .views
            .iter()
            .map(|view| ViewLayout::new(view, request_inputs))
            .collect::<Result<Vec<_>, _>>()?;
        let position_of = |name: &str| request_inputs.iter().position(|i| i.name == name);
        let view_key_inputs = views
            .iter()
            .map(|view| {
                view.key()
                    .iter()
                    .filter_map(|part| position_of(&part.name))
                    .collect()
            })
            .collect();
        for entry in &declaration.assembly {
            if !model
                .inputs
                .iter()
                .any(|input| input.name == entry.model_input)
            {
                return Err(DeclarationError::UnknownModelInput {
                    name: entry.model_input.clone(),
                    inputs: names(model.inputs.iter().map(|input| input.name.as_str())),
                });
            }
            if entry.segments.is_empty() {
                return Err(DeclarationError::NoSegments {
                    model_input: entry.model_input.clone(),
                });
            }
        }

        let mut model_inputs = Vec::with_capacity(model.inputs.len());
        for input in &model.inputs {
            let pass_through;
            let segments = match declaration
                .assembly
                .iter()
                .find(|entry| entry.model_input == input.name)
            {
                Some(entry) => entry.segments.as_slice(),
                None if position_of(&input.name).is_some() => {
                    pass_through = [Segment::RequestInput(input.name.clone())];
                    pass_through.as_slice()
                }
                None => {
                    return Err(DeclarationError::UnassembledModelInput {
                        name: input.name.clone(),
                    });
                }
            };
            let unassemblable = |reason| DeclarationError::UnassemblableModelInput {
                model_input: input.name.clone(),
                datatype: input.datatype,
                dims: input.dims.clone(),
                reason,
            };
            let Some(element_size) = input.datatype.element_size() else {
                return Err(unassemblable(
                    "only fixed-size model inputs can be assembled with looked-up features",
                ));
            };
            if input.dims.iter().any(|&dim| dim < 0) {
                return Err(unassemblable(
                    "a dimension is variable: give the model input a fixed width",
                ));
            }
            if segments.len() > 1 && input.dims.len() != 1 {
                return Err(unassemblable(
                    "segments concatenate along the feature axis: give the model input dims [width] (2-D with the batch dim)",
                ));
            }
            let columns = input
                .dims
                .iter()
                .try_fold(1usize, |total, &dim| {
                    total.checked_mul(usize::try_from(dim).ok()?)
                })
                .ok_or_else(|| unassemblable("its width overflows"))?;

            let mut planned = Vec::with_capacity(segments.len());
            let mut widths = Vec::with_capacity(segments.len());
            let mut offset = 0;
            for segment in segments {
                let (source, segment_columns, label) = match segment {
                    Segment::RequestInput(name) => {
                        let Some(position) = position_of(name) else {
                            return Err(DeclarationError::UnknownRequestInput {
                                user: format!("model input '{}'", input.name),
                                name: name.clone(),
                                declared: names(request_inputs.iter().map(|i| i.name.as_str())),
                            });
                        };
                        let request = &request_inputs[position];
                        if request.datatype != input.datatype {
                            return Err(DeclarationError::SegmentDatatype {
                                model_input: input.name.clone(),
                                segment: format!("request input '{name}'"),
                                expected: input.datatype,
                                actual: request.datatype,
                            });
                        }
                        (
                            SegmentSource::Request(position),
                            request.columns,
                            format!("request input '{name}'"),
                        )
                    }
                    Segment::View(name) => {
                        let Some(position) = views.iter().position(|view| view.view() == name)
                        else {
                            return Err(DeclarationError::UnknownView {
                                model_input: input.name.clone(),
                                name: name.clone(),
                                declared: names(views.iter().map(ViewLayout::view)),
                            });
                        };
                        let view = &views[position];
                        if let Some(feature) = view
                            .features()
                            .iter()
                            .find(|feature| feature.datatype != input.datatype)
                        {
                            return Err(DeclarationError::SegmentDatatype {
                                model_input: input.name.clone(),
                                segment: format!("feature '{name}.{}'", feature.name),
                                expected: input.datatype,
                                actual: feature.datatype,
                            });
                        }
                        (
                            SegmentSource::View(position),
                            view.features().len(),
                            format!("view '{name}'"),
                        )
                    }
                };
                widths.push(format!("{label} ({segment_columns})"));
                let bytes = segment_columns * element_size;
                planned.push(SegmentPlan {
                    source,
                    offset,
                    bytes,
                });
                offset += bytes;
            }
            let total_columns = offset / element_size;
            if total_columns != columns {
                return Err(DeclarationError::Width {
                    model_input: input.name.clone(),
                    expected: columns,
                    actual: total_columns,
                    segments: widths.join(" + "),
                });
            }
            model_inputs.push(ModelInputLayout {
                name: input.name.clone(),
                datatype: input.datatype,
                dims: input.dims.clone(),
                row_bytes: offset,
                segments: planned,
            });
        }

        let segment_sources = || {
            model_inputs
                .iter()
                .flat_map(|input| input.segments.iter().map(|segment| segment.source))
        };
        for (position, view) in views.iter().enumerate() {
            let count = segment_sources()
                .filter(|&source| source == SegmentSource::View(position))
                .count();
            if count != 1 {
                return Err(DeclarationError::ViewPlacement {
                    view: view.view().to_owned(),
                    count,
                });
            }
        }
        for (position, input) in request_inputs.iter().enumerate() {
            let is_key = views
                .iter()
                .any(|view| view.key().iter().any(|part| part.name == input.name));
            let is_segment =
                segment_sources().any(|source| source == SegmentSource::Request(position));
            if !is_key && !is_segment {
                return Err(DeclarationError::UnusedRequestInput {
                    input: input.name.clone(),
                });
            }
        }

        let stats = Arc::new(JoinStats::new(
            views.iter().map(|view| view.view().to_owned()).collect(),
        ));
        Ok(JoinPlan {
            request_row_bytes: request_inputs
                .iter()
                .map(|input| {
                    input
                        .datatype
                        .element_size()
                        .map(|size| size * input.columns)
                })
                .collect(),
            request_inputs: request_inputs.clone(),
            views,
            view_key_inputs,
            model_inputs,
            stats,
        })
    }

    /// What clients send (what ModelMetadata shows), in the order the gather takes the buffers.
    pub fn request_inputs(&self) -> &[RequestInput] {
        &self.request_inputs
    }

    /// The views' layouts, in declaration order (what `FeatureStore::new` takes).
    pub fn view_layouts(&self) -> &[ViewLayout] {
        &self.views
    }

    /// The layout of view `name`, to build its tables or decode its fetched rows.
    pub fn view_layout(&self, name: &str) -> Option<&ViewLayout> {
        self.views.iter().find(|view| view.view() == name)
    }

    /// The position of view `name` among the views (its `ViewSource`'s position).
    pub fn view_position(&self, name: &str) -> Option<usize> {
        self.views.iter().position(|view| view.view() == name)
    }

    /// The model's inputs as the join writes them, in signature order.
    pub fn model_inputs(&self) -> &[ModelInputLayout] {
        &self.model_inputs
    }

    /// The shape of each model input for `rows` rows: the rows, then the input's dims.
    pub fn model_input_shapes(&self, rows: usize) -> Vec<Vec<i64>> {
        let rows = i64::try_from(rows).unwrap_or(i64::MAX);
        self.model_inputs()
            .iter()
            .map(|input| {
                std::iter::once(rows)
                    .chain(input.dims().iter().copied())
                    .collect()
            })
            .collect()
    }

    /// The plan's lookup counters.
    pub fn stats(&self) -> &Arc<JoinStats> {
        &self.stats
    }

    /// Bytes per row of request input `input` (`None` for BYTES).
    pub(crate) fn request_row_bytes(&self, input: usize) -> Option<usize> {
        self.request_row_bytes[input]
    }

    /// View `view`'s key parts as request input positions.
    pub(crate) fn view_key_inputs(&self, view: usize) -> &[usize] {
        &self.view_key_inputs[view]
    }
}

/// Fails on the first name of `names` given twice.
fn check_unique<'a>(
    what: &'static str,
    names: impl Iterator<Item = &'a str>,
) -> Result<(), DeclarationError> {
    let mut seen: Vec<&str> = Vec::new();
    for name in names {
        if seen.contains(&name) {
            return Err(DeclarationError::Duplicate {
                what,
                name: name.to_owned(),
            });
        }
        seen.push(name);
    }
    Ok(())
}
