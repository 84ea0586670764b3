"""RootletSeg: 3D Slicer module segmenting spinal nerve rootlets (nnU-Net v2) and comparing spinal with vertebral levels.
Widget wiring only; the rest is the Qt-free `RootletSegLogic.slicer.panel_session.PanelSession` (docs/slicer_module.md).
"""

import logging
import sys
from pathlib import Path

import ctk
import qt
import slicer
import vtk
from slicer import vtkMRMLMarkupsFiducialNode, vtkMRMLScalarVolumeNode, vtkMRMLSegmentationNode, vtkMRMLTableNode
from slicer.i18n import translate, tr as _
from slicer.parameterNodeWrapper import parameterNodeWrapper
from slicer.ScriptedLoadableModule import (ScriptedLoadableModule, ScriptedLoadableModuleLogic,
                                          ScriptedLoadableModuleTest, ScriptedLoadableModuleWidget)
from slicer.util import VTKObservationMixin


def _coreFolder() -> Path:
    """Folder holding RootletSegLogic/ and Resources/: beside this file once installed, the repository root else."""
    here = Path(__file__).resolve().parent
    return here if (here / "RootletSegLogic" / "__init__.py").is_file() else here.parent


if str(_coreFolder()) not in sys.path:
    sys.path.insert(0, str(_coreFolder()))

from RootletSegLogic.slicer import child_command, dependencies, panel_session, self_test, session  # noqa: E402
from RootletSegLogic.slicer.session import Contrast, Device, LevelMethod, ModelChoice  # noqa: E402

SETTINGS = "RootletSeg/"
CONTRIBUTORS = ["Katerina Krejci (NeuroPoly, Polytechnique Montreal)", "Jan Valosek (NeuroPoly, Polytechnique Montreal)"]


class RootletSeg(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("RootletSeg")
        self.parent.categories = [translate("qSlicerAbstractCoreModule", "Segmentation")]
        self.parent.dependencies = ["Segmentations", "Markups"]
        self.parent.contributors = CONTRIBUTORS
        self.parent.helpText = _(
            "Segments spinal nerve rootlets (C2-T1) on T2w and MP2RAGE MRI with the RootletSeg nnU-Net v2 model and "
            "compares spinal with vertebral levels. Please cite: Krejci K, Chmelik J, Bedard S, Eippert F, Horn U, "
            "Callot V, Cohen-Adad J, Valosek J. Segmentation of spinal rootlets across MRI contrasts with RootletSeg. "
            "Scientific Reports (2026), <a href=\"https://doi.org/10.1038/s41598-026-49164-0\">"
            "doi:10.1038/s41598-026-49164-0</a>. Model weights (MIT) are downloaded on first use. Not for clinical use.")
        self.parent.acknowledgementText = _(
            "RootletSeg model and method: NeuroPoly (Polytechnique Montreal) and collaborators (Krejci, Valosek, "
            "Chmelik, Cohen-Adad, Eippert, Callot et al.), built on nnU-Net v2 and Spinal Cord Toolbox conventions.")
        slicer.app.connect("startupCompleted()", _onStartupCompleted)


def _onStartupCompleted():
    """Register RootletSeg's terminology (segments reference its context) and the phantom in Sample Data."""
    try:
        import SampleData

        session.register_at_startup(slicer.modules.terminologies.logic(), SampleData.SampleDataLogic,
                                    lambda: slicer.mrmlScene, str(_coreFolder() / "Resources" / "Icons" / "RootletSeg.png"))
    except Exception as error:  # noqa: BLE001 - start-up goes on; the log says why
        logging.warning("RootletSeg: start-up registration failed: %s", error)


@parameterNodeWrapper
class RootletSegParameterNode:
    """The module's state, saved with the scene (the cord: any segment of any segmentation; see PanelSession)."""

    inputVolume: vtkMRMLScalarVolumeNode
    contrast: Contrast = Contrast.T2w
    model: ModelChoice = ModelChoice.rootletseg
    modelPath: str = ""  # synchronised by hand with modelPathLineEdit (a Path binding would show "." when empty)
    device: Device = Device.auto
    tta: bool = False
    outputSegmentation: vtkMRMLSegmentationNode
    cordSegmentation: vtkMRMLSegmentationNode
    cordSegmentId: str = ""
    discs: vtkMRMLMarkupsFiducialNode
    levelMethod: LevelMethod = LevelMethod.paper
    autoUpdateLevels: bool = True
    levelTable: vtkMRMLTableNode
    detectLandmarks: bool = False  # Apply finds the cord and discs first
    landmarkModel: str = "totalspineseg"


class RootletSegWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = self.session = self._parameterNode = self._parameterNodeGuiTag = None

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(str(_coreFolder() / "Resources" / "UI" / "RootletSeg.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = RootletSegModuleLogic()
        self.session = panel_session.PanelSession(slicer.mrmlScene, python=child_command.python_executable())
        self._levelTimer = self._timer(panel_session.LEVEL_UPDATE_DELAY_MS, self.updateLevels, single=True)
        self._pollTimer = self._timer(panel_session.POLL_INTERVAL_MS, self._pollChild)
        self.ui.modelPathLineEdit.filters = ctk.ctkPathLineEdit.Files
        self.ui.modelPathLineEdit.nameFilters = [_("Model zip (*.zip)"), _("All files (*)")]
        self.ui.progressBar.setVisible(False)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.addObserver(slicer.app.applicationLogic().GetInteractionNode(),
                         slicer.vtkMRMLInteractionNode.InteractionModeChangedEvent, lambda caller, event:
                         self.session.placement_ended(caller.GetCurrentInteractionMode() == caller.Place))
        for widget, signal, slot in (
            (self.ui.applyButton, "clicked(bool)", self.onApplyButton),
            (self.ui.detectLandmarksButton, "clicked(bool)", lambda: self._startJob(
                self.session.start_detection, _("Failed to start the cord and disc detection."))),
            (self.ui.modelPathLineEdit, "currentPathChanged(QString)", self.session.model_path_from_widget),
            (self.ui.modelFolderButton, "clicked(bool)", lambda: self.session.model_path_from_widget(
                self._choose("folder", _("Model folder"), "LastModelFolder") or self._parameterNode.modelPath)),
            (self.ui.cordSegmentSelector, "currentSegmentChanged(QString)", self.onCordSegmentChanged),
            (self.ui.cordSegmentSelector, "currentNodeChanged(vtkMRMLNode*)", self.onCordSegmentChanged),
            (self.ui.loadCordButton, "clicked(bool)", lambda: self._openAndLoad(
                _("Load spinal cord mask"), _("Cord mask (*.nii.gz *.nii *.nrrd *.mha)"),
                _("Failed to load the cord mask."), self.session.load_cord_file)),
            (self.ui.placeDiscButton, "clicked(bool)", lambda: self._placePoint(pmj=False)),
            (self.ui.placePmjButton, "clicked(bool)", lambda: self._placePoint(pmj=True)),
            (self.ui.importDiscsButton, "clicked(bool)", lambda: self._openAndLoad(
                _("Import SCT disc labels"), _("Disc labels (*.nii.gz *.nii *.nrrd *.mha)"),
                _("Failed to import the disc labels."), self.session.import_disc_labels)),
            (self.ui.updateLevelsButton, "clicked(bool)", lambda: self.updateLevels(showErrors=True)),
            (self.ui.showChartButton, "clicked(bool)", lambda: self.session.show_chart(slicer.modules.plots.logic())),
            (self.ui.show3DCheckBox, "toggled(bool)", self.session.show_3d),
            (self.ui.exportAllButton, "clicked(bool)", self.onExportAll),
        ):
            widget.connect(signal, slot)
        for kind, name in panel_session.EXPORT_BUTTONS.items():
            getattr(self.ui, name).connect("clicked(bool)", lambda _checked=False, k=kind: self.onExport(k))
        self.initializeParameterNode()

    def _timer(self, interval, slot, single=False):
        timer = qt.QTimer()
        timer.setSingleShot(single)
        timer.setInterval(interval)
        timer.connect("timeout()", slot)
        return timer

    def cleanup(self) -> None:
        self.session.scene_closing()
        self._pollTimer.stop()
        self._levelTimer.stop()
        self.removeObservers()

    def enter(self) -> None:
        self.initializeParameterNode()

    def exit(self) -> None:
        self.setParameterNode(None)

    def onSceneStartClose(self, caller, event) -> None:
        self._pollTimer.stop()
        self.session.scene_closing()  # also removes the level-input observers
        self.setParameterNode(None)
        self.ui.levelsStatusLabel.text = ""
        self.ui.progressBar.setVisible(False)

    def onSceneEndClose(self, caller, event) -> None:
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self) -> None:
        self.setParameterNode(self.logic.getParameterNode())
        settings = qt.QSettings()  # the last Apply's choices, restored on a fresh parameter node
        self.session.initialize({key: settings.value(SETTINGS + key) for key in panel_session.REMEMBERED_CHOICES})

    def setParameterNode(self, parameterNode) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._onParameterNodeModified)
        self._parameterNode = self.session.params = parameterNode
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._onParameterNodeModified)
            self._onParameterNodeModified()

    def _onParameterNodeModified(self, caller=None, event=None) -> None:
        """Parameter node -> widgets, as PanelSession.panel_state says (selector signals ignored meanwhile)."""
        p = self._parameterNode
        if p is None:
            return
        with self.session.guard.writing_gui():
            for name, properties in self.session.widget_states().items():
                widget = getattr(self.ui, name)
                for prop, value in properties.items():
                    if getattr(widget, prop) != value:
                        setattr(widget, prop, value)
        self.ui.applyButton.text = _("Cancel") if self.session.running else _("Apply")
        panel_session.show_cord_in_selector(p, self.ui.cordSegmentSelector, self.session.guard)
        if p.levelTable is not None:
            self.ui.levelTableView.setMRMLTableNode(p.levelTable)
        self.session.observe_level_inputs(self._scheduleLevelUpdate, self._onPointPositionDefined)

    def onCordSegmentChanged(self, *args) -> None:
        if self._parameterNode is not None:
            with slicer.util.NodeModify(self._parameterNode):
                panel_session.cord_from_selector(self._parameterNode, self.ui.cordSegmentSelector, self.session.guard)

    def _onPointPositionDefined(self, caller=None, event=None) -> None:
        self.session.point_placed(caller)
        self._scheduleLevelUpdate()

    def _scheduleLevelUpdate(self, caller=None, event=None) -> None:
        if self._parameterNode is not None and self._parameterNode.autoUpdateLevels and not self.session.running:
            self._levelTimer.start()

    def updateLevels(self, showErrors=False) -> None:
        self._levelTimer.stop()
        if self._parameterNode is not None and not self.session.running:
            self.ui.levelsStatusLabel.text, failed = self.session.level_status()
            if failed and showErrors:
                slicer.util.errorDisplay(self.ui.levelsStatusLabel.text)
            self._onParameterNodeModified()

    def onApplyButton(self) -> None:
        if self.session.running:
            self.ui.statusLabel.text = _("Cancelling...")
            self.session.cancel()  # returns at once; the poll timer reports the end
            return
        if self.session.level_segments_edited() and not slicer.util.confirmOkCancelDisplay(
                _("The level segments were edited. Segmenting again replaces those edits. Continue?")):
            return
        self._startJob(self.session.start_chosen, _("Failed to start the segmentation."))

    def _startJob(self, start, failure) -> None:
        with slicer.util.tryWithErrorDisplay(failure, waitCursor=True):
            if not self.logic.ensureDependencies():
                self.ui.statusLabel.text = _("Missing Python packages were not installed.")
                return
            start()
            for key, value in self.session.remembered_choices().items():
                qt.QSettings().setValue(SETTINGS + key, value)
            self.ui.logTextEdit.clear()
            self.ui.progressBar.value = 0
            self.ui.progressBar.setVisible(True)
            self.ui.statusLabel.text = _("Starting...")
            self._pollTimer.start()
        self._onParameterNodeModified()

    def _pollChild(self) -> None:
        update = self.session.poll_update()
        self._appendLog()
        if update.percent is not None:
            self.ui.progressBar.value = update.percent
        if update.status:
            self.ui.statusLabel.text = update.status
        if update.finished is not None:
            self._onFinished(update.finished)
        elif not self.session.running:
            self._pollTimer.stop()

    def _appendLog(self) -> None:
        for line in self.session.take_log_lines():
            self.ui.logTextEdit.appendPlainText(line)

    def _onFinished(self, event) -> None:
        self._pollTimer.stop()
        self.ui.statusLabel.text = _("Failed.")
        try:
            with slicer.util.tryWithErrorDisplay(_("Segmentation failed."), waitCursor=True):
                self.ui.statusLabel.text = self.session.finish(event)
                if self.session.running:  # the segmentation that follows a detection (Apply with detection)
                    self._pollTimer.start()
                elif not event.get("cancelled"):
                    self.session.show_3d(self.ui.show3DCheckBox.checked)
                    slicer.util.setSliceViewerLayers(background=self._parameterNode.inputVolume)
                    self.updateLevels()
        finally:
            self.ui.progressBar.setVisible(self.session.running)
            self._appendLog()
            self._onParameterNodeModified()

    def _choose(self, mode, title, key, filters="", name="") -> str:
        """An open/save file or folder dialog starting where the last one of `key` ended (remembered in settings)."""
        start = str(Path(qt.QSettings().value(SETTINGS + key, "") or Path.home()) / name)
        window, dialog = slicer.util.mainWindow(), qt.QFileDialog
        path = (dialog.getExistingDirectory(window, title, start) if mode == "folder" else
                dialog.getSaveFileName(window, title, start, filters) if mode == "save" else
                dialog.getOpenFileName(window, title, start, filters))
        if path:
            qt.QSettings().setValue(SETTINGS + key, path if mode == "folder" else str(Path(path).parent))
        return path

    def _openAndLoad(self, title, filters, failure, load) -> None:
        path = self._choose("open", title, "LastInputFolder", filters + ";;" + _("All files (*)"))
        if path:
            with slicer.util.tryWithErrorDisplay(failure, waitCursor=True):
                load(path)

    def _placePoint(self, pmj: bool) -> None:
        label = self.session.start_placing(slicer.modules.markups.logic(), pmj)
        if label:
            self.ui.statusLabel.text = _("Click the {name} position in a view.").format(name=label)
        else:
            slicer.util.infoDisplay(_("All discs C2/C3 to T1/T2 are placed. Move a point to correct it."))

    def onExport(self, kind: str) -> None:
        chosen = self._choose("save", _("Export"), "LastExportFolder", session.EXPORT_FILTERS[kind],
                              self.session.default_export_name(kind))
        path, unconfirmed = session.export_path(chosen, kind) if chosen else (None, False)
        if path and (not unconfirmed or slicer.util.confirmOkCancelDisplay(
                _("'{path}' exists. Replace it?").format(path=path))):
            with slicer.util.tryWithErrorDisplay(_("Export failed."), waitCursor=True):
                written = self.session.export(kind, path, overwrite=True)  # replacing was confirmed
                self.ui.statusLabel.text = _("Wrote {path}").format(path=written)

    def onExportAll(self) -> None:
        folder = self._choose("folder", _("Export all into"), "LastExportFolder")
        existing = "\n".join(str(path) for path in self.session.existing_export_all_paths(folder)) if folder else ""
        if folder and (not existing or slicer.util.confirmOkCancelDisplay(
                _("These files exist and will be replaced:\n{files}").format(files=existing))):
            with slicer.util.tryWithErrorDisplay(_("Export failed."), waitCursor=True):
                written = self.session.export_all(folder, overwrite=bool(existing))
                self.ui.statusLabel.text = _("Wrote {count} files into {folder}").format(count=len(written),
                                                                                         folder=folder)


class RootletSegModuleLogic(ScriptedLoadableModuleLogic):
    """Parameter node and dependency installation. (Not named RootletSegLogic: the core package's name.)"""

    def getParameterNode(self):
        return RootletSegParameterNode(super().getParameterNode())

    @staticmethod
    def ensureDependencies(confirm: bool = True) -> bool:
        """True when torch and nnunetv2 are importable, installing them after ONE confirmation when missing."""
        ask = lambda message: not confirm or slicer.util.confirmOkCancelDisplay(  # noqa: E731
            message, windowTitle=_("Install Python packages"))
        return dependencies.ensure_installed(slicer.modules, ask, slicer.util.errorDisplay, slicer.util.pip_install)


class RootletSegTest(ScriptedLoadableModuleTest):
    """The demo model on the phantom through the panel's Apply path (PanelSession); skipped without torch/nnunetv2."""

    def runTest(self):
        slicer.mrmlScene.Clear()
        self.test_DemoModelOnPhantom()

    def test_DemoModelOnPhantom(self):
        summary = self_test.demo_self_test(slicer.mrmlScene, RootletSegModuleLogic().getParameterNode(),
                                           python=child_command.python_executable())
        self.assertTrue(summary.startswith("Done") and "spinal" in summary, summary)
        self.delayDisplay("Test passed")
